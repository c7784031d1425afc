package gitops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/medcad/medcad/gitops/cas"
)

// runJSON is a run record as stored, digests as text; its field order is
// the record's key order.
type runJSON struct {
	ID        string             `json:"id"`
	Stage     string             `json:"stage"`
	Started   time.Time          `json:"started"`
	Finished  time.Time          `json:"finished"`
	Commit    string             `json:"commit"`
	Dirty     bool               `json:"dirty"`
	Branch    string             `json:"branch"`
	Key       string             `json:"key"`
	Params    map[string]string  `json:"params"`
	Datasets  map[string]string  `json:"datasets"`
	Env       string             `json:"env_lock,omitempty"`
	Facts     map[string]string  `json:"facts"`
	Metrics   map[string]float64 `json:"metrics"`
	Outs      string             `json:"outs"`
	Eval      string             `json:"eval,omitempty"`
	Artifact  string             `json:"artifact,omitempty"`
	Signature string             `json:"signature,omitempty"`
}

// MarshalJSON writes the record; a zero digest is "" or left out.
func (r Run) MarshalJSON() ([]byte, error) {
	w := runJSON{
		ID: r.ID, Stage: r.Stage, Started: r.Started, Finished: r.Finished, Commit: r.Commit, Dirty: r.Dirty,
		Branch: r.Branch, Key: r.Key, Params: r.Params, Env: DigestText(r.Env), Facts: r.Facts, Metrics: r.Metrics,
		Outs: DigestText(r.Outs), Eval: DigestText(r.Eval), Artifact: DigestText(r.Artifact), Signature: r.Signature,
	}
	if r.Datasets != nil {
		w.Datasets = make(map[string]string, len(r.Datasets))
		for k, id := range r.Datasets {
			w.Datasets[k] = DigestText(id)
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a record strictly: unknown keys and malformed
// digests are errors.
func (r *Run) UnmarshalJSON(b []byte) error {
	var w runJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	v := Run{
		ID: w.ID, Stage: w.Stage, Started: w.Started, Finished: w.Finished, Commit: w.Commit, Dirty: w.Dirty,
		Branch: w.Branch, Key: w.Key, Params: w.Params, Facts: w.Facts, Metrics: w.Metrics, Signature: w.Signature,
	}
	var err error
	for _, d := range []struct {
		key string
		dst *cas.ID
		v   string
	}{{"env_lock", &v.Env, w.Env}, {"outs", &v.Outs, w.Outs}, {"eval", &v.Eval, w.Eval}, {"artifact", &v.Artifact, w.Artifact}} {
		if *d.dst, err = ParseDigest(d.v); err != nil {
			return fmt.Errorf("%s: %w", d.key, err)
		}
	}
	if w.Datasets != nil {
		v.Datasets = make(map[string]cas.ID, len(w.Datasets))
		for k, s := range w.Datasets {
			if v.Datasets[k], err = cas.ParseID(s); err != nil {
				return fmt.Errorf("datasets %q: %w", k, err)
			}
		}
	}
	*r = v
	return nil
}
