package gitops

import (
	"strings"

	"github.com/medcad/medcad/gitops/cas"
)

// Roots lists the store manifests dataset d reaches: each case's image
// sub-manifest, then the dataset manifest (whose files include the label
// maps). Together with their files they are the dataset's closure: what a
// fresh clone needs from the remote.
func (d *Dataset) Roots() []cas.ID {
	roots := make([]cas.ID, 0, len(d.Cases)+1)
	for _, c := range d.Cases {
		if !c.Image.IsZero() {
			roots = append(roots, c.Image)
		}
	}
	return append(roots, d.Manifest)
}

// ClosureID names d's closure: its complete marker on a remote says that
// every object of every root is there, so "is this dataset fully pushed?"
// stays one request.
func (d *Dataset) ClosureID() cas.ID {
	var b strings.Builder
	b.WriteString("medcad dataset closure\n")
	for _, id := range d.Roots() {
		b.WriteString(id.String())
		b.WriteByte('\n')
	}
	return cas.Sum([]byte(b.String()))
}

// roots lists the roots of every dataset of ds, each once.
func roots(ds []*Dataset) []cas.ID {
	seen := map[cas.ID]bool{}
	var out []cas.ID
	for _, d := range ds {
		for _, id := range d.Roots() {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}
