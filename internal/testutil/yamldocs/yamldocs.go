// Package yamldocs splits multi-document YAML (Kubernetes manifests,
// rendered charts) for tests. It is apart from testutil so that only the
// tests that read manifests link Kubernetes' YAML reader.
package yamldocs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Document is one document of a multi-document YAML stream, as written
// and as JSON.
type Document struct {
	Index int // position in the stream, counting empty documents
	YAML  []byte
	JSON  []byte
}

// Split splits a multi-document YAML stream (Kubernetes manifests,
// rendered charts) and converts each document to JSON strictly: a
// duplicate key is an error, as kubectl's strict decoding makes it. Empty
// documents (a lone "---", comments only) are left out.
func Split(data []byte) ([]Document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []Document
	for i := 0; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		out = append(out, Document{Index: i, YAML: doc, JSON: js})
	}
}
