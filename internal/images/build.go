package images

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Module is the Go module the images are built from.
const Module = "github.com/angzarr-mesh/angzarr"

// Options say what to build and where.
type Options struct {
	Root       string // the repository's root (the Go module)
	Out        string // build/images
	Repository string // image repository prefix, e.g. ghcr.io/angzarr-mesh
	GOARCH     string // of the binary images; default amd64
	Meta       Meta
}

// Result is one image written.
type Result struct {
	Name   string
	Ref    string  // Repository/Name:Version, the tarball's tag
	Digest v1.Hash // of the manifest: what `crane digest` and WasmPlugin's sha256 give
	Layout string  // OCI image layout directory
	Tar    string  // tarball
	Image  v1.Image
}

// spec is one image: how to build its content and wrap it.
type spec struct {
	name, description string
	pkg               string // Go main package
	wasm              bool
	withFilter        bool // carries the filter at FilterPath
}

// specs in build order: the filter first, for the CLI image to carry it.
var specs = []spec{
	{name: "angzarr-filter", description: "Angzarr Mesh proxy-wasm filter for Envoy and Istio (WasmPlugin oci://)", pkg: "./filter/cmd/angzarr-filter", wasm: true},
	{name: "angzarr", description: "Angzarr Mesh CLI: event service, control plane, local proxy and client verbs; the filter at " + FilterPath, pkg: "./cmd/angzarr", withFilter: true},
	{name: "shop", description: "Angzarr Mesh example shop: business logic, sagas and projector over gRPC", pkg: "./examples/go/cmd/shop"},
}

// Names are the images Build writes, in order.
func Names() []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.name
	}
	return out
}

// Build compiles the binaries and the filter and writes every image as an
// OCI layout (Out/NAME) and a tarball (Out/NAME.tar), replacing earlier
// ones.
func Build(ctx context.Context, o Options) ([]Result, error) {
	if o.GOARCH == "" {
		o.GOARCH = "amd64"
	}
	if o.Meta.Version == "" || o.Meta.Revision == "" || o.Meta.Created.IsZero() {
		return nil, fmt.Errorf("images: Meta needs a version, a revision and a creation time")
	}
	tmp, err := os.MkdirTemp("", "angzarr-images-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	var results []Result
	var filter []byte
	for _, s := range specs {
		bin := filepath.Join(tmp, s.name)
		if err := goBuild(ctx, o, s, bin); err != nil {
			return nil, err
		}
		content, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		var img v1.Image
		switch {
		case s.wasm:
			filter = content
			img, err = WasmImage(s.name, s.description, content, o.Meta)
		case s.withFilter:
			img, err = BinaryImage(s.name, s.description, content, o.GOARCH, o.Meta, File{Path: FilterPath, Mode: 0o444, Data: filter})
		default:
			img, err = BinaryImage(s.name, s.description, content, o.GOARCH, o.Meta)
		}
		if err != nil {
			return nil, fmt.Errorf("images: %s: %w", s.name, err)
		}
		r, err := write(o, s.name, img)
		if err != nil {
			return nil, fmt.Errorf("images: %s: %w", s.name, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// goBuild builds a static, reproducible binary: no cgo, -trimpath, no
// build id, stripped, the version stamped as `make build` stamps it.
func goBuild(ctx context.Context, o Options, s spec, out string) error {
	args := []string{"build", "-trimpath", "-o", out}
	env := append(os.Environ(), "CGO_ENABLED=0")
	ldflags := "-s -w -buildid= -X " + Module + "/internal/version.Version=" + o.Meta.Version
	if s.wasm {
		// As `make filter`: the wasip1 reactor.
		args = append(args, "-buildmode=c-shared")
		env = append(env, "GOOS=wasip1", "GOARCH=wasm")
		ldflags = "-buildid="
	} else {
		env = append(env, "GOOS=linux", "GOARCH="+o.GOARCH)
	}
	args = append(args, "-ldflags", ldflags, s.pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = o.Root, env
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("images: go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// write replaces Out/NAME (OCI layout, the image tagged in its index) and
// Out/NAME.tar.
func write(o Options, imgName string, img v1.Image) (Result, error) {
	ref := fmt.Sprintf("%s/%s:%s", strings.TrimSuffix(o.Repository, "/"), imgName, tagOf(o.Meta.Version))
	tag, err := name.NewTag(ref)
	if err != nil {
		return Result{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return Result{}, err
	}
	r := Result{Name: imgName, Ref: ref, Digest: digest, Image: img,
		Layout: filepath.Join(o.Out, imgName), Tar: filepath.Join(o.Out, imgName+".tar")}
	if err := os.RemoveAll(r.Layout); err != nil {
		return Result{}, err
	}
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add: img,
		Descriptor: v1.Descriptor{Annotations: map[string]string{
			"org.opencontainers.image.ref.name": ref,
		}},
	})
	if _, err := layout.Write(r.Layout, idx); err != nil {
		return Result{}, err
	}
	if err := tarball.WriteToFile(r.Tar, tag, img); err != nil {
		return Result{}, err
	}
	return r, nil
}

// tagOf turns a `git describe` version into a valid tag (at most 128 of
// [A-Za-z0-9_.-], not starting with . or -).
func tagOf(v string) string {
	b := []byte(v)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			b[i] = '_'
		}
	}
	t := strings.TrimLeft(string(b), ".-")
	if t == "" {
		t = "dev"
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}
