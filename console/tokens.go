package console

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// NewToken returns a random login token (32 bytes, URL-safe base64).
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ReadTokens reads a token file: one "USER TOKEN" a line; blank lines and
// lines starting with # are skipped. It returns token → user.
func ReadTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want USER TOKEN", path, n)
		}
		if _, dup := out[fields[1]]; dup {
			return nil, fmt.Errorf("%s:%d: a token given twice", path, n)
		}
		out[fields[1]] = fields[0]
	}
	return out, sc.Err()
}
