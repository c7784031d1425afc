package intake

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/medcad/medcad/internal/atomicfile"
)

// KeyFile is the re-identification key of a project, relative to its
// root: which delivery folder each case id came from. It is the one place
// where medcad keeps an original name, for the data manager who must
// trace a case back to the hospital's export. It lives in the project's
// uncommitted .medcad/ folder (which also gets a .gitignore of its own),
// is written with mode 0600, and is never stored, committed or pushed.
const KeyFile = ".medcad/reid.tsv"

const keyHeader = "# medcad re-identification key: case id, dataset, delivery folder. Local only: never commit, push or share it.\n"

// KeyEntry is one line of the re-identification key.
type KeyEntry struct {
	CaseID, Dataset, Folder string
}

// WriteKey records, in the key file under root, the delivery folder of
// every case of dataset in origins (case id → folder), replacing earlier
// entries of the same case ids and keeping the others.
func WriteKey(root, dataset string, origins map[string]string) error {
	path := filepath.Join(root, filepath.FromSlash(KeyFile))
	entries, err := ReadKey(root)
	if err != nil {
		return err
	}
	byID := map[string]KeyEntry{}
	for _, e := range entries {
		byID[e.CaseID] = e
	}
	for id, folder := range origins {
		byID[id] = KeyEntry{CaseID: id, Dataset: dataset, Folder: folder}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b bytes.Buffer
	b.WriteString(keyHeader)
	for _, id := range ids {
		e := byID[id]
		fmt.Fprintf(&b, "%s\t%s\t%s\n", e.CaseID, e.Dataset, keyField(e.Folder))
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// .medcad/ is ignored by the scaffolded .gitignore; this makes sure of
	// it in projects whose .gitignore lost the line.
	ignore := filepath.Join(dir, ".gitignore")
	if _, err := os.Stat(ignore); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.WriteFile(ignore, []byte("*\n"), 0o644); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(path, b.Bytes(), 0o600)
}

// keyField writes a folder name on one line: quoted (Go syntax) when it
// holds a tab, a line break or a quote at its start.
func keyField(s string) string {
	if strings.ContainsAny(s, "\t\n\r") || strings.HasPrefix(s, `"`) {
		return strconv.Quote(s)
	}
	return s
}

// ReadKey reads the re-identification key under root (none: no entries).
func ReadKey(root string) ([]KeyEntry, error) {
	path := filepath.Join(root, filepath.FromSlash(KeyFile))
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []KeyEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want case id, dataset and folder separated by tabs", path, n)
		}
		folder := f[2]
		if strings.HasPrefix(folder, `"`) {
			if folder, err = strconv.Unquote(folder); err != nil {
				return nil, fmt.Errorf("%s:%d: bad quoted folder", path, n)
			}
		}
		out = append(out, KeyEntry{CaseID: f[0], Dataset: f[1], Folder: folder})
	}
	return out, sc.Err()
}
