package images_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/angzarr-mesh/angzarr/internal/images"
)

var meta = images.Meta{
	Source:   "https://github.com/angzarr-mesh/angzarr",
	Revision: "0123456789abcdef0123456789abcdef01234567",
	Version:  "v0.0.0-test",
	Created:  time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC),
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestBinaryImageIsReproducibleAndSaysWhatItIs: the same input gives the
// same digest; the config runs the binary as the non-root user, with the
// labels; every layer is an OCI layer whose files carry no owner names and
// the commit's time.
func TestBinaryImageIsReproducibleAndSaysWhatItIs(t *testing.T) {
	bin := []byte("\x7fELF not really")
	a, err := images.BinaryImage("angzarr", "the CLI", bin, "amd64", meta)
	if err != nil {
		t.Fatal(err)
	}
	b, err := images.BinaryImage("angzarr", "the CLI", bytes.Clone(bin), "amd64", meta)
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, a) != digest(t, b) {
		t.Fatalf("two builds of the same input differ: %s, %s", digest(t, a), digest(t, b))
	}
	later := meta
	later.Created = meta.Created.Add(time.Second)
	c, err := images.BinaryImage("angzarr", "the CLI", bin, "amd64", later)
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, c) == digest(t, a) {
		t.Fatal("the creation time does not reach the digest")
	}

	m, err := a.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("manifest %s, config %s: want OCI media types", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 2 {
		t.Fatalf("%d layers, want base and binary", len(m.Layers))
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer media type %s", l.MediaType)
		}
	}
	cf, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want the non-root 65532:65532", cf.Config.User)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/usr/local/bin/angzarr" {
		t.Errorf("entrypoint %q", got)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.source":   meta.Source,
		"org.opencontainers.image.revision": meta.Revision,
		"org.opencontainers.image.version":  meta.Version,
		"org.opencontainers.image.created":  "2026-12-07T10:00:00Z",
	} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if !cf.Created.Equal(meta.Created) || len(cf.History) != 2 || !cf.History[0].Created.Equal(meta.Created) {
		t.Errorf("created %v, history %+v", cf.Created, cf.History)
	}

	files := extract(t, a)
	for _, want := range []string{"etc/passwd", "etc/group", "tmp", "home/nonroot", "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/angzarr"} {
		if _, ok := files[want]; !ok {
			t.Errorf("%s missing from the image", want)
		}
	}
	for name, f := range files {
		if f.hdr.Uname != "" || f.hdr.Gname != "" || !f.hdr.ModTime.Equal(meta.Created) {
			t.Errorf("%s: owner %q/%q, time %v", name, f.hdr.Uname, f.hdr.Gname, f.hdr.ModTime)
		}
	}
	if f := files["usr/local/bin/angzarr"]; f.hdr.Mode != 0o755 || !bytes.Equal(f.data, bin) {
		t.Errorf("binary mode %o, %d bytes", f.hdr.Mode, len(f.data))
	}
	if f := files["tmp"]; f.hdr.Mode != 0o1777 {
		t.Errorf("/tmp mode %o, want 1777", f.hdr.Mode)
	}
	if f := files["home/nonroot"]; f.hdr.Uid != 65532 {
		t.Errorf("home owned by %d", f.hdr.Uid)
	}
	if !strings.Contains(string(files["etc/passwd"].data), "nonroot:x:65532:65532:") {
		t.Errorf("passwd: %s", files["etc/passwd"].data)
	}
}

// TestCACertificatesParse: the bundle is a PEM file of real roots that Go
// (what the binaries are) loads.
func TestCACertificatesParse(t *testing.T) {
	rest := images.CACertificates()
	n := 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			t.Fatalf("certificate %d: %v", n, err)
		}
		n++
	}
	if n < 100 || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%d certificates, %d bytes left over", n, len(rest))
	}
	if !x509.NewCertPool().AppendCertsFromPEM(images.CACertificates()) {
		t.Fatal("crypto/x509 loads none")
	}
}

// TestBuildWritesEveryImage runs what `make images` runs, twice: the same
// commit gives the same digests; each OCI layout holds its image under its
// tag and the tarball the same config and layers; the CLI extracted from
// its layer is a static binary that runs here and reports the version it
// was stamped with; the filter image gives plugin.wasm to Istio's
// compat-variant extraction.
func TestBuildWritesEveryImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds three binaries")
	}
	if raceEnabled {
		t.Skip("under -race: the build runs without it in `make test-e2e`")
	}
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	build := func() []images.Result {
		o := images.Options{Root: strings.TrimSpace(string(root)), Out: t.TempDir(), Repository: "example.test/angzarr-mesh", Meta: meta}
		rs, err := images.Build(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	first, second := build(), build()
	if len(first) != 3 {
		t.Fatalf("%d images, want angzarr-filter, angzarr, shop", len(first))
	}
	for i, r := range first {
		if r.Digest != second[i].Digest {
			t.Errorf("%s: %s then %s from the same commit", r.Name, r.Digest, second[i].Digest)
		}
		checkLayout(t, r)
		checkTarball(t, r)
	}

	filter, cli := first[0], first[1]
	files := extract(t, cli.Image)
	wasm, err := istioCompatExtract(filter.Image)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(wasm, []byte("\x00asm\x01\x00\x00\x00")) || len(wasm) < 1<<20 {
		t.Fatalf("plugin.wasm: %d bytes, starts %q", len(wasm), wasm[:min(8, len(wasm))])
	}
	if f := files[strings.TrimPrefix(images.FilterPath, "/")]; !bytes.Equal(f.data, wasm) {
		t.Errorf("the CLI image's %s (%d bytes) is not the filter image's module", images.FilterPath, len(f.data))
	}
	cf, err := filter.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "wasip1" || cf.Architecture != "wasm" || cf.Config.Labels["org.opencontainers.image.revision"] != meta.Revision {
		t.Errorf("filter image config: %s/%s %v", cf.OS, cf.Architecture, cf.Config.Labels)
	}

	bin := filepath.Join(t.TempDir(), "angzarr")
	if err := os.WriteFile(bin, files["usr/local/bin/angzarr"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	checkStatic(t, bin)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), meta.Version) {
		t.Fatalf("angzarr version from the image: %v\n%s", err, out)
	}
	shop := filepath.Join(t.TempDir(), "shop")
	if err := os.WriteFile(shop, extract(t, first[2].Image)["usr/local/bin/shop"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	checkStatic(t, shop)
}

// checkLayout: the layout's index names one manifest, the image's, tagged.
func checkLayout(t *testing.T, r images.Result) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(r.Layout)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != r.Digest ||
		im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != r.Ref {
		t.Fatalf("%s: layout index %+v, want %s tagged %s", r.Name, im.Manifests, r.Digest, r.Ref)
	}
	img, err := idx.Image(r.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest(t, img); got != r.Digest {
		t.Fatalf("%s: layout image %s", r.Name, got)
	}
}

// checkTarball: `docker load`'s format keeps the config and the layers
// (not the OCI manifest: docker writes its own), so those must match.
func checkTarball(t *testing.T, r images.Result) {
	t.Helper()
	img, err := tarball.ImageFromPath(r.Tar, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := r.Image.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	got, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("%s: tarball config %s, image config %s", r.Name, got, want)
	}
	wl, _ := r.Image.Layers()
	gl, err := img.Layers()
	if err != nil || len(gl) != len(wl) {
		t.Fatalf("%s: tarball layers %d (%v), want %d", r.Name, len(gl), err, len(wl))
	}
	for i := range wl {
		a, _ := wl[i].DiffID()
		b, _ := gl[i].DiffID()
		if a != b {
			t.Errorf("%s: layer %d %s in the tarball, %s in the image", r.Name, i, b, a)
		}
	}
}

// checkStatic: an empty base has no dynamic loader.
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked", bin)
		}
	}
}

// istioCompatExtract follows istio/istio pkg/wasm/imagefetcher.go for an
// OCI manifest: extractOCIStandardImage takes the last layer, requires the
// OCI tar+gzip media type, and reads the entry whose base name is
// plugin.wasm (extractWasmPluginBinary).
func istioCompatExtract(img v1.Image) ([]byte, error) {
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 {
		return nil, errors.New("no layers")
	}
	l := layers[len(layers)-1]
	if mt, _ := l.MediaType(); mt != types.OCILayer {
		return nil, errors.New("media type " + string(mt))
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, err
		}
		if path.Base(h.Name) == images.WasmPluginFile {
			return io.ReadAll(tr)
		}
	}
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

// extract reads the image's flattened file system.
func extract(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(h.Name, "/")] = entry{hdr: h, data: b}
	}
}
