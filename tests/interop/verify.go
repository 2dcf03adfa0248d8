// Independent verifier for a moat ledger, built only from golang.org/x/mod's
// sumdb/note and sumdb/tlog (the Go checksum database's implementation of signed
// notes and tiled Merkle logs). It checks, with no moat code involved:
//   - the checkpoint's Ed25519 signed-note signature under the verifier key;
//   - every hash tile it needs, authenticated against the signed root
//     (tlog.TileHashReader), and the tree hash itself;
//   - every entry in the entry bundles against its stored leaf hash;
//   - that every full tile's bytes are what tlog computes for that tile;
//   - inclusion and consistency proofs produced by `moat ledger proof --json`,
//     with tlog.CheckRecord / tlog.CheckTree, and byte equality with
//     tlog.ProveRecord / tlog.ProveTree.
//
// usage: verify -dir LEDGER -vkey VKEY [-old CHECKPOINT] PROOF.json...
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

// tilePath is the C2SP tlog-tiles path: tile/<L>/<N>[.p/<W>], tile/entries/<N>…
func tilePath(level int, n int64, w int) string {
	nStr := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		nStr = fmt.Sprintf("x%03d/%s", n%1000, nStr)
	}
	l := strconv.Itoa(level)
	if level < 0 {
		l = "entries"
	}
	p := "tile/" + l + "/" + nStr
	if w < 1<<height {
		p += ".p/" + strconv.Itoa(w)
	}
	return p
}

type tileReader struct{ dir string }

func (r tileReader) Height() int { return height }

func (r tileReader) read(level int, n int64, w int) ([]byte, error) {
	full, err := os.ReadFile(filepath.Join(r.dir, tilePath(level, n, 1<<height)))
	if err == nil {
		return full, nil
	}
	return os.ReadFile(filepath.Join(r.dir, tilePath(level, n, w)))
}

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t.H != height {
			return nil, fmt.Errorf("unexpected tile height %d", t.H)
		}
		data, err := r.read(t.L, t.N, t.W)
		if err != nil {
			return nil, err
		}
		if len(data) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s too short", tilePath(t.L, t.N, t.W))
		}
		out[i] = data[:t.W*tlog.HashSize]
	}
	return out, nil
}

func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func openCheckpoint(path string, verifiers note.Verifiers) (checkpoint, error) {
	var cp checkpoint
	msg, err := os.ReadFile(path)
	if err != nil {
		return cp, err
	}
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return cp, fmt.Errorf("%s: signature: %v", path, err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		return cp, fmt.Errorf("%s: not a checkpoint", path)
	}
	cp.origin = lines[0]
	if cp.size, err = strconv.ParseInt(lines[1], 10, 64); err != nil {
		return cp, fmt.Errorf("%s: size: %v", path, err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return cp, fmt.Errorf("%s: root", path)
	}
	copy(cp.root[:], root)
	if n.Sigs[0].Name != cp.origin {
		return cp, fmt.Errorf("%s: origin %q is not the key name %q", path, cp.origin, n.Sigs[0].Name)
	}
	return cp, nil
}

type proofFile struct {
	Type     string   `json:"type"`
	Index    int64    `json:"index"`
	Size     int64    `json:"size"`
	LeafHash string   `json:"leaf_hash"`
	OldSize  int64    `json:"old_size"`
	NewSize  int64    `json:"new_size"`
	Proof    []string `json:"proof"`
}

func hashes(in []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(in))
	for i, s := range in {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return nil, errors.New("bad proof hash")
		}
		copy(out[i][:], b)
	}
	return out, nil
}

func equal(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func run() error {
	dir := flag.String("dir", "", "ledger directory")
	vkey := flag.String("vkey", "", "verifier key")
	oldPath := flag.String("old", "", "older checkpoint for consistency proofs")
	flag.Parse()
	v, err := note.NewVerifier(*vkey)
	if err != nil {
		return fmt.Errorf("verifier key: %v", err)
	}
	verifiers := note.VerifierList(v)
	cp, err := openCheckpoint(filepath.Join(*dir, "checkpoint"), verifiers)
	if err != nil {
		return err
	}
	tree := tlog.Tree{N: cp.size, Hash: cp.root}
	hr := tlog.TileHashReader(tree, tileReader{*dir})
	th, err := tlog.TreeHash(cp.size, hr)
	if err != nil {
		return fmt.Errorf("tree hash: %v", err)
	}
	if th != cp.root {
		return errors.New("tree hash from tiles differs from the signed root")
	}
	fmt.Printf("checkpoint ok: %s size %d\n", cp.origin, cp.size)

	// Every entry against its (authenticated) leaf hash.
	for start := int64(0); start < cp.size; start += 1 << height {
		w := cp.size - start
		if w > 1<<height {
			w = 1 << height
		}
		data, err := tileReader{*dir}.read(-1, start>>height, int(w))
		if err != nil {
			return fmt.Errorf("bundle %d: %v", start>>height, err)
		}
		for i := int64(0); i < w; i++ {
			if len(data) < 2 {
				return fmt.Errorf("bundle %d truncated", start>>height)
			}
			n := int(data[0])<<8 | int(data[1])
			if len(data) < 2+n {
				return fmt.Errorf("bundle %d truncated", start>>height)
			}
			entry := data[2 : 2+n]
			data = data[2+n:]
			stored, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, start+i)})
			if err != nil {
				return fmt.Errorf("leaf %d: %v", start+i, err)
			}
			if tlog.RecordHash(entry) != stored[0] {
				return fmt.Errorf("entry %d does not match its leaf hash", start+i)
			}
		}
	}
	fmt.Printf("entries ok: %d\n", cp.size)

	// Full tiles on disk are byte for byte what tlog computes.
	nfull := 0
	for level := 0; ; level++ {
		count := cp.size >> (uint(height) * uint(level))
		if count < 1<<height {
			break
		}
		for n := int64(0); n < count>>height; n++ {
			t := tlog.Tile{H: height, L: level, N: n, W: 1 << height}
			want, err := tlog.ReadTileData(t, hr)
			if err != nil {
				return err
			}
			got, err := os.ReadFile(filepath.Join(*dir, tilePath(level, n, 1<<height)))
			if err != nil || !bytes.Equal(got, want) {
				return fmt.Errorf("full tile %s differs", tilePath(level, n, 1<<height))
			}
			nfull++
		}
	}
	fmt.Printf("full tiles ok: %d\n", nfull)

	var old *checkpoint
	if *oldPath != "" {
		o, err := openCheckpoint(*oldPath, verifiers)
		if err != nil {
			return err
		}
		old = &o
	}
	for _, path := range flag.Args() {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var p proofFile
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		proof, err := hashes(p.Proof)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		switch p.Type {
		case "inclusion":
			if p.Size != cp.size {
				return fmt.Errorf("%s: proof for size %d, checkpoint %d", path, p.Size, cp.size)
			}
			leaf, err := hashes([]string{p.LeafHash})
			if err != nil {
				return err
			}
			if err := tlog.CheckRecord(proof, cp.size, cp.root, p.Index, leaf[0]); err != nil {
				return fmt.Errorf("%s: CheckRecord: %v", path, err)
			}
			mine, err := tlog.ProveRecord(cp.size, p.Index, hr)
			if err != nil || !equal(mine, proof) {
				return fmt.Errorf("%s: differs from tlog.ProveRecord", path)
			}
			fmt.Printf("inclusion ok: entry %d in %d (%d hashes)\n", p.Index, cp.size, len(proof))
		case "consistency":
			if old == nil || p.OldSize != old.size || p.NewSize != cp.size {
				return fmt.Errorf("%s: sizes do not match the checkpoints", path)
			}
			if err := tlog.CheckTree(proof, cp.size, cp.root, old.size, old.root); err != nil {
				return fmt.Errorf("%s: CheckTree: %v", path, err)
			}
			mine, err := tlog.ProveTree(cp.size, old.size, hr)
			if err != nil || !equal(mine, proof) {
				return fmt.Errorf("%s: differs from tlog.ProveTree", path)
			}
			fmt.Printf("consistency ok: %d -> %d (%d hashes)\n", old.size, cp.size, len(proof))
		default:
			return fmt.Errorf("%s: unknown proof type %q", path, p.Type)
		}
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("go verifier: all checks passed")
}
