// An independent tlog-tiles client for tests/it/tiles.rs: Go's
// golang.org/x/mod/sumdb/{note,tlog} (the code the Go checksum database
// runs), not Jisr's. It fetches /checkpoint over HTTPS, opens it with the
// log's verifier key, reads the tree through tlog.TileHashReader (which
// checks every tile it reads against the checkpoint's root), recomputes the
// root, checks each entry of the bundles named on the command line against
// its leaf hash, and proves and checks the inclusion of chosen entries.
//
// Usage: tiles_client CA URL VERIFIER_KEY OUT_DIR BUNDLES PROVE
// where BUNDLES is a comma-separated list of bundle paths (e.g.
// "000,001,002.p/44") written to OUT_DIR/bundle-<n> as fetched, and PROVE a
// comma-separated list of entry indexes. Prints "ok size=<n> root=<b64>".
// Built with GO111MODULE=off GOPATH=/usr/share/gocode (Debian's
// golang-golang-x-mod-dev), so nothing is fetched.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var client *http.Client
var base string

func fetch(path string) []byte {
	resp, err := client.Get(base + "/" + path)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	if resp.StatusCode != 200 {
		fail("GET %s: %s: %s", path, resp.Status, body)
	}
	return body
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tiles_client: "+format+"\n", args...)
	os.Exit(1)
}

// tiles reads hash tiles at the C2SP paths: Go's own tile paths are
// "tile/8/<L>/<N>[.p/<W>]" with the same <N> encoding, the height aside.
type tiles struct{}

func (tiles) Height() int { return 8 }

func (tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		out[i] = fetch("tile/" + strings.TrimPrefix(t.Path(), "tile/8/"))
	}
	return out, nil
}

func (tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	if len(os.Args) != 7 {
		fail("usage: tiles_client CA URL VERIFIER_KEY OUT_DIR BUNDLES PROVE")
	}
	pem, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail("no certificate in %s", os.Args[1])
	}
	client = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	base = strings.TrimSuffix(os.Args[2], "/")

	verifier, err := note.NewVerifier(os.Args[3])
	if err != nil {
		fail("verifier key: %v", err)
	}
	msg := fetch("checkpoint")
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint does not verify: %v\n%s", err, msg)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != verifier.Name() {
		fail("checkpoint origin is not %q:\n%s", verifier.Name(), n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		fail("checkpoint root: %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], rootBytes)
	tree := tlog.Tree{N: size, Hash: root}
	hr := tlog.TileHashReader(tree, tiles{})

	got, err := tlog.TreeHash(size, hr)
	if err != nil {
		fail("tree hash from tiles: %v", err)
	}
	if got != root {
		fail("tree hash from tiles %v is not the checkpoint's %v", got, root)
	}

	entries := map[int64][]byte{}
	for _, b := range strings.Split(os.Args[5], ",") {
		bundle := fetch("tile/entries/" + b)
		if err := os.WriteFile(filepath.Join(os.Args[4], "bundle-"+strings.ReplaceAll(b, "/", "_")), bundle, 0o644); err != nil {
			fail("%v", err)
		}
		first := bundleIndex(b) * 256
		for i := int64(0); len(bundle) > 0; i++ {
			if len(bundle) < 2 {
				fail("bundle %s: a torn length", b)
			}
			l := int(binary.BigEndian.Uint16(bundle))
			if len(bundle) < 2+l {
				fail("bundle %s: entry %d is cut", b, first+i)
			}
			entry := bundle[2 : 2+l]
			bundle = bundle[2+l:]
			leaf, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, first+i)})
			if err != nil {
				fail("leaf hash %d: %v", first+i, err)
			}
			if tlog.RecordHash(entry) != leaf[0] {
				fail("entry %d of bundle %s does not hash to its leaf in the tiles", first+i, b)
			}
			entries[first+i] = entry
		}
	}

	for _, s := range strings.Split(os.Args[6], ",") {
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fail("index %q: %v", s, err)
		}
		entry, ok := entries[i]
		if !ok {
			fail("entry %d is not in the bundles fetched", i)
		}
		proof, err := tlog.ProveRecord(size, i, hr)
		if err != nil {
			fail("inclusion proof of %d from tiles: %v", i, err)
		}
		if err := tlog.CheckRecord(proof, size, root, i, tlog.RecordHash(entry)); err != nil {
			fail("inclusion of %d: %v", i, err)
		}
	}
	fmt.Printf("ok size=%d root=%s\n", size, base64.StdEncoding.EncodeToString(root[:]))
}

// bundleIndex reads "<N>[.p/<W>]" back to N.
func bundleIndex(path string) int64 {
	path = strings.SplitN(path, ".p/", 2)[0]
	var n int64
	for _, g := range strings.Split(path, "/") {
		d, err := strconv.ParseInt(strings.TrimPrefix(g, "x"), 10, 64)
		if err != nil {
			fail("bundle path %q", path)
		}
		n = n*1000 + d
	}
	return n
}
