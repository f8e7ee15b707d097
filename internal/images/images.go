// Package images builds Angzarr Mesh's OCI images without a container
// engine: `make images` runs it (through cmd/mkimages) to write, under
// build/images/,
//
//   - angzarr: the angzarr CLI (event service, control plane, proxy);
//   - shop: the example shop's logic, sagas and projector
//     (examples/go/cmd/shop);
//   - angzarr-filter: the filter module as a Wasm image in the "compat"
//     format Istio's WasmPlugin pulls with oci:// (one OCI tar+gzip layer
//     holding plugin.wasm; istio/istio pkg/wasm/imagefetcher.go,
//     extractOCIStandardImage).
//
// Each is written twice: as an OCI image layout directory (NAME/, for
// `crane push` or `skopeo copy oci:...`) and as a tarball (NAME.tar, for
// `docker load` or `crane push NAME.tar`).
//
// The binary images are a static Go binary on an empty base: no base image
// is downloaded. The base layer holds only what a Go server needs from a
// file system: /etc/passwd and /etc/group with the non-root user the image
// runs as (65532, "nonroot"), its home, a world-writable /tmp, and the CA
// certificates. The certificates come from golang.org/x/crypto/x509roots
// (Mozilla's NSS roots, pinned in go.mod) rather than from this machine's
// /etc/ssl, so that the same commit gives the same bytes anywhere.
//
// Reproducible: the same commit gives the same digests. Every timestamp is
// the commit's time (SOURCE_DATE_EPOCH overrides it), tar headers carry no
// owner names or host details and files are sorted, gzip is written here
// with a fixed level and an empty header, and the Go binaries are built
// with -trimpath and an empty build id. Labels name the source, revision
// and version (org.opencontainers.image.*).
//
// go-containerregistry assembles the manifests, configs and layouts: it is
// what Istio itself uses to pull Wasm images, and it needs no daemon.
package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/pem"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The user the binary images run as: distroless's "nonroot".
const (
	NonRootUID  = 65532
	NonRootName = "nonroot"
)

// CACertificatesPath is where the base layer puts the CA bundle: the path
// Go's crypto/x509 reads first on Linux.
const CACertificatesPath = "/etc/ssl/certs/ca-certificates.crt"

// WasmPluginFile is the file name Istio's compat-variant extraction looks
// for in the Wasm image's layer (extractWasmPluginBinary).
const WasmPluginFile = "plugin.wasm"

// File is one entry of a layer. A Path ending in "/" is a directory.
type File struct {
	Path string // absolute, slash-separated
	Mode int64  // permission bits (and sticky bit)
	UID  int
	Data []byte
}

// Layer returns a gzip-compressed OCI layer holding files (sorted by path,
// every parent directory implied), all dated modTime, with no owner names.
func Layer(files []File, modTime time.Time) (v1.Layer, error) {
	files = withParents(files)
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for _, f := range files {
		name := strings.TrimPrefix(f.Path, "/")
		hdr := &tar.Header{
			Name:    name,
			Mode:    f.Mode,
			Uid:     f.UID,
			Gid:     f.UID,
			ModTime: modTime.UTC(),
			Format:  tar.FormatPAX,
		}
		if strings.HasSuffix(f.Path, "/") {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.Data))
		}
		// PAX would add access and change times; zero them so only ModTime
		// (rounded to a second) is written.
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("images: tar %s: %w", f.Path, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, fmt.Errorf("images: tar %s: %w", f.Path, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	gz, err := gzipBytes(tarBuf.Bytes())
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// gzipBytes compresses b with a fixed level and an empty header (no name,
// no time, unknown OS), so equal input gives equal output with the same Go
// release (compress/flate's output is not promised across releases, which
// is why the images carry the Go version in their binaries' build info).
func gzipBytes(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	zw.OS = 255
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// withParents returns files sorted by path with a directory entry (0755,
// root) for every parent not listed.
func withParents(files []File) []File {
	have := map[string]bool{}
	for _, f := range files {
		have[strings.TrimSuffix(f.Path, "/")] = true
	}
	out := slices.Clone(files)
	for _, f := range files {
		for dir := path.Dir(strings.TrimSuffix(f.Path, "/")); dir != "/" && dir != "."; dir = path.Dir(dir) {
			if !have[dir] {
				have[dir] = true
				out = append(out, File{Path: dir + "/", Mode: 0o755})
			}
		}
	}
	slices.SortFunc(out, func(a, b File) int {
		return strings.Compare(strings.TrimSuffix(a.Path, "/"), strings.TrimSuffix(b.Path, "/"))
	})
	return out
}

// BaseFiles is the empty base: the non-root user, its home, /tmp, and the
// CA certificates.
func BaseFiles() []File {
	return []File{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				fmt.Sprintf("%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n", NonRootName, NonRootUID, NonRootUID, NonRootName, NonRootName))},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(
			"root:x:0:\n" + fmt.Sprintf("%s:x:%d:\n", NonRootName, NonRootUID))},
		{Path: "/home/" + NonRootName + "/", Mode: 0o700, UID: NonRootUID},
		{Path: "/tmp/", Mode: 0o1777},
		{Path: CACertificatesPath, Mode: 0o644, Data: CACertificates()},
	}
}

// CACertificates is the PEM bundle of Mozilla's NSS roots as pinned in
// go.mod. Roots that NSS trusts only with a constraint X.509 cannot
// express (distrust after a date) are left out: a PEM file would trust
// them without it.
func CACertificates() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}

// Meta is what every image says about where it comes from.
type Meta struct {
	Source   string    // repository URL
	Revision string    // commit
	Version  string    // `git describe`
	Created  time.Time // the commit's time
}

func (m Meta) labels(title, description string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       title,
		"org.opencontainers.image.description": description,
		"org.opencontainers.image.source":      m.Source,
		"org.opencontainers.image.revision":    m.Revision,
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
	}
}

// FilterPath is where the angzarr image carries the filter module, for the
// control plane to serve it to proxies (--serve-filter).
const FilterPath = "/usr/share/angzarr/filter.wasm"

// BinaryImage is a static binary at /usr/local/bin/NAME on the empty base,
// run as the non-root user with NAME as its entrypoint, for linux/GOARCH.
// extra files, if any, make a third layer.
func BinaryImage(name, description string, binary []byte, goarch string, m Meta, extra ...File) (v1.Image, error) {
	base, err := Layer(BaseFiles(), m.Created)
	if err != nil {
		return nil, err
	}
	bin, err := Layer([]File{{Path: "/usr/local/bin/" + name, Mode: 0o755, Data: binary}}, m.Created)
	if err != nil {
		return nil, err
	}
	layers, history := []v1.Layer{base, bin}, []string{"base: passwd, group, /tmp, CA certificates", name}
	if len(extra) > 0 {
		l, err := Layer(extra, m.Created)
		if err != nil {
			return nil, err
		}
		names := make([]string, len(extra))
		for i, f := range extra {
			names[i] = f.Path
		}
		layers, history = append(layers, l), append(history, strings.Join(names, " "))
	}
	cfg := v1.Config{
		User:       fmt.Sprintf("%d:%d", NonRootUID, NonRootUID),
		Entrypoint: []string{"/usr/local/bin/" + name},
		Env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"SSL_CERT_FILE=" + CACertificatesPath,
			"HOME=/home/" + NonRootName,
		},
		WorkingDir: "/home/" + NonRootName,
		Labels:     m.labels(name, description),
	}
	return assemble(layers, history, "linux", goarch, cfg, m)
}

// WasmImage is the filter module as Istio's WasmPlugin pulls it: one OCI
// tar+gzip layer with plugin.wasm at its root (the "compat" variant of the
// Wasm image spec; istio/istio pkg/wasm/imagefetcher.go,
// extractOCIStandardImage takes the last layer, requires the media type
// application/vnd.oci.image.layer.v1.tar+gzip and reads the file whose
// base name is plugin.wasm).
func WasmImage(name, description string, wasm []byte, m Meta) (v1.Image, error) {
	l, err := Layer([]File{{Path: "/" + WasmPluginFile, Mode: 0o444, Data: wasm}}, m.Created)
	if err != nil {
		return nil, err
	}
	return assemble([]v1.Layer{l}, []string{WasmPluginFile}, "wasip1", "wasm", v1.Config{Labels: m.labels(name, description)}, m)
}

// assemble puts layers, their history and the config together as an OCI
// image (OCI manifest and config media types, not Docker's).
func assemble(layers []v1.Layer, history []string, os, arch string, cfg v1.Config, m Meta) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, MediaType: types.OCILayer, History: v1.History{
			Created:   v1.Time{Time: m.Created.UTC()},
			CreatedBy: "angzarr mkimages: " + history[i],
		}}
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	cf.Config = cfg
	cf.Created = v1.Time{Time: m.Created.UTC()}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, v1.Time{Time: m.Created.UTC()})
}
