// Package endpoints is the file `angzarr dev` writes once the local mesh is
// ready (DIR/endpoints.json, DIR being .angzarr by default) and the client
// verbs read to find the mesh without flags. It is removed on a clean
// shutdown.
package endpoints

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// FileName is the file's name inside the data directory.
const FileName = "endpoints.json"

// DefaultDir is the data directory of `angzarr dev` and the client verbs.
const DefaultDir = ".angzarr"

// File lists where each part of a running local mesh listens.
type File struct {
	// PID of the `angzarr dev` process.
	PID int `json:"pid"`
	// DataDir is the data directory (absolute).
	DataDir string `json:"dataDir"`
	// EventService is the event service's gRPC address (angzarr.EventQuery,
	// angzarr.EventStore, angzarr.FanoutAdmin).
	EventService string `json:"eventService"`
	// EventServiceMetrics is the event service's Prometheus endpoint:
	// http://EventServiceMetrics/metrics. Empty in files of meshes that
	// had none.
	EventServiceMetrics string `json:"eventServiceMetrics,omitempty"`
	// ControlPlane is the xDS address.
	ControlPlane string `json:"controlPlane"`
	// ControlPlaneMetrics is the control plane's Prometheus endpoint:
	// http://ControlPlaneMetrics/metrics. Empty in files of meshes that
	// had none.
	ControlPlaneMetrics string `json:"controlPlaneMetrics,omitempty"`
	// Console is the web console's HTTP address (angzarr console); its
	// login URL, which holds a secret, is printed, not written here.
	Console string `json:"console,omitempty"`
	// Domains maps each domain to its endpoints.
	Domains map[string]Domain `json:"domains"`
	// Sagas and Projectors map each subscriber's name to its address.
	Sagas      map[string]string `json:"sagas,omitempty"`
	Projectors map[string]string `json:"projectors,omitempty"`
	// ProcessManagers maps each process manager's name to its address.
	ProcessManagers map[string]string `json:"processManagers,omitempty"`
	// MTLS says every server requires mTLS: clients use the operator's
	// certificate of OperatorFiles.
	MTLS bool `json:"mtls,omitempty"`
}

// IdentityDir is the directory of the local mesh's CA and certificates
// inside its data directory.
const IdentityDir = "identity"

// OperatorFiles are the operator's certificate, key and the CA bundle the
// local mesh issues in dataDir: the client verbs' identity.
func OperatorFiles(dataDir string) (cert, key, ca string) {
	d := filepath.Join(dataDir, IdentityDir)
	return filepath.Join(d, "operator.crt"), filepath.Join(d, "operator.key"), filepath.Join(d, "ca.crt")
}

// Domain is where one domain is served.
type Domain struct {
	// Coordinator is the proxy running the filter:
	// angzarr.BusinessCoordinator, where commands are sent.
	Coordinator string `json:"coordinator"`
	// Admin is the proxy's admin endpoint (/ready, /stats/prometheus).
	Admin string `json:"admin,omitempty"`
	// Logic is the business logic behind the proxy (angzarr.BusinessLogic;
	// direct calls bypass the store).
	Logic string `json:"logic"`
	// Language of the business logic: "go" or "python".
	Language string `json:"language"`
}

// Path is the endpoints file of data directory dir ("" means DefaultDir).
func Path(dir string) string {
	if dir == "" {
		dir = DefaultDir
	}
	return filepath.Join(dir, FileName)
}

// ErrNotRunning means there is no endpoints file: no local mesh runs with
// that data directory.
var ErrNotRunning = errors.New("no local mesh found")

// Read reads the endpoints file of data directory dir.
func Read(dir string) (*File, error) {
	p := Path(dir)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist; start it with `angzarr dev` (or `make dev`) in this directory, or pass --addr", ErrNotRunning, p)
	}
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &f, nil
}

// Write writes f atomically (a temporary file renamed over it).
func Write(dir string, f *File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, FileName+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), Path(dir))
}

// Coordinator is the address commands for domain go to.
func (f *File) Coordinator(domain string) (string, error) {
	d, ok := f.Domains[domain]
	if !ok {
		names := make([]string, 0, len(f.Domains))
		for n := range f.Domains {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", fmt.Errorf("the local mesh serves no domain %q (it serves %v)", domain, names)
	}
	return d.Coordinator, nil
}
