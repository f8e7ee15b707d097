package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// ModulePath is the path the control plane serves the filter module on.
const ModulePath = "/filter.wasm"

// moduleDigest returns the hex SHA-256 of the module file.
func moduleDigest(path string) ([]byte, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("filter module: %w", err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// serveModule serves the filter module at ModulePath on lis until ctx is
// done, so that proxies (Istio sidecars fetching a remote Wasm source
// through the mesh) need no other artifact server. The content is read
// once: the SHA-256 pushed in the filter config describes it.
func serveModule(ctx context.Context, lis net.Listener, module []byte) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ModulePath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/wasm")
		_, _ = w.Write(module)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
