package promote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
)

// promotedMarker starts the comment a promotion posts on the merged PR.
const promotedMarker = "<!-- medcad:promoted -->"

// RunOptions configure Run.
type RunOptions struct {
	GitRemote string         // git remote of the run records and the tag ("": origin)
	NoPush    bool           // verify and tag locally only
	PR        int            // the merged pull request to comment on (0: find it)
	Key       string         // the signing key, as in MEDCAD_SIGNING_KEY
	Env       *action.Env    // nil outside Actions: no outputs or summary
	GitHub    *action.Client // nil: no comment, no pull request looked up
	Log       io.Writer      // notes for the job log
}

// Result is what Run did.
type Result struct {
	Promoted bool   `json:"promoted"`
	Alias    *Alias `json:"alias"`
	Comment  string `json:"comment,omitempty"`
	// Local: tagged in the local repository only (NoPush).
	Local bool `json:"-"`
}

// Run promotes the model manifest committed at HEAD of project p: it is
// checked (signatures, run record, artifact on the store, gates against
// the production model), tagged models/<model>/v<N> (tag pushed), recorded
// as the production alias on the store, and announced on the merged pull
// request. A manifest that is production already is left alone. A refusal
// is a *RefusedError.
func Run(ctx context.Context, p *gitops.Project, o RunOptions) (*Result, error) {
	if o.GitRemote == "" {
		o.GitRemote = "origin"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	key, err := Key(o.Key)
	if err != nil {
		return nil, err
	}
	repo, err := p.Repo()
	if err != nil {
		return nil, err
	}
	token := ""
	if o.Env != nil {
		token = o.Env.Token
	}
	remote := gitrepo.Remote{Name: o.GitRemote, Token: token}
	if _, err := repo.Remote(o.GitRemote); err == nil {
		if err := gitrepo.Fetch(ctx, repo, remote, "+"+gitops.RunRefPrefix+"*:"+gitops.RunRefPrefix+"*"); err != nil {
			return nil, err
		}
	} else if !o.NoPush {
		return nil, fmt.Errorf("git remote %q: %w", o.GitRemote, err)
	}
	head, err := gitrepo.Resolve(repo, "HEAD")
	if err != nil {
		return nil, err
	}
	name := p.Config.Project.Model
	file := gitops.ModelPath(name) + "@" + head.Hash.String()[:12]
	manifest, err := gitrepo.ReadFile(head, gitops.ModelPath(name), 1<<20)
	if errors.Is(err, gitrepo.ErrNoFile) {
		return nil, fmt.Errorf("%s: %w", file, gitops.ErrNoModel)
	}
	if err != nil {
		return nil, err
	}
	m, err := gitops.ParseModel(file, manifest)
	if err != nil {
		return nil, err
	}
	store, err := p.Remote(ctx)
	if err != nil {
		return nil, fmt.Errorf("remote store: %w", err)
	}
	prod, err := Production(ctx, store, m.Name)
	if err != nil {
		return nil, err
	}
	if prod != nil && prod.Artifact == m.Artifact {
		fmt.Fprintf(o.Log, "%s is production already (v%d, tag %s): nothing to promote\n", m.Name, prod.Version, prod.Tag)
		return &Result{Alias: prod}, nil
	}
	var baseline cas.ID
	if prod != nil {
		baseline = prod.Artifact
	}
	if err := Check(ctx, CheckOptions{File: file, Model: m, Key: key, Repo: repo, Remote: store, Baseline: baseline}); err != nil {
		return nil, err
	}
	v := 1
	if prod != nil {
		v = prod.Version + 1
	}
	alias := &Alias{
		Model: m.Name, Version: v, Artifact: m.Artifact, Manifest: cas.Sum(manifest), Run: m.Run,
		Commit: head.Hash.String(), Tag: Tag(m.Name, v), PR: o.PR, PromotedAt: time.Now().UTC().Truncate(time.Second),
	}
	if o.GitHub != nil && alias.PR == 0 {
		n, err := o.GitHub.MergedPullRequest(ctx, head.Hash.String())
		if err != nil && !errors.Is(err, action.ErrNoPullRequest) {
			return nil, err
		}
		alias.PR = n
	}
	lineage := Lineage(m, alias)
	msg := fmt.Sprintf("promoted %s v%d\n\n%s", m.Name, v, lineage)
	if o.NoPush {
		// A dry promotion: verified and tagged here, recorded nowhere else.
		if err := gitrepo.Tag(repo, alias.Tag, head.Hash, msg); err != nil {
			return nil, err
		}
		return &Result{Alias: alias, Local: true}, nil
	}
	if err := gitrepo.TagAndPush(ctx, repo, remote, alias.Tag, head.Hash, msg); err != nil {
		return nil, err
	}
	if err := Record(ctx, store, alias); err != nil {
		return nil, err
	}
	res := &Result{Promoted: true, Alias: alias}
	heading := fmt.Sprintf("### medcad: promoted `%s` v%d\n\n", action.CodeSpan(m.Name), v)
	if o.GitHub != nil && alias.PR > 0 {
		cm, err := o.GitHub.AddComment(ctx, alias.PR, promotedMarker+"\n"+heading+lineage)
		if err != nil {
			return nil, err
		}
		res.Comment = cm.URL
	}
	if o.Env != nil {
		for _, kv := range [][2]string{{"model-digest", m.Artifact.String()}, {"verdict", "promoted"}} {
			if err := action.SetOutput(o.Env.OutputFile, kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
		if err := action.AppendSummary(o.Env.SummaryFile, heading+lineage); err != nil {
			return nil, err
		}
	}
	return res, nil
}
