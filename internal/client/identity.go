package client

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	"github.com/angzarr-mesh/angzarr/internal/identity"
)

// DialFor is the transport towards the local mesh in dataDir: mTLS with
// its operator certificate when the running mesh requires mTLS
// (endpoints.json says so), else plaintext.
func DialFor(dataDir string) (grpc.DialOption, error) {
	f, err := endpoints.Read(dataDir)
	if err != nil || !f.MTLS {
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	cert, key, ca := endpoints.OperatorFiles(f.DataDir)
	files, err := identity.LoadFiles(cert, key, ca, "")
	if err != nil {
		return nil, err
	}
	return identity.DialOption(files, identity.ID{}), nil
}
