package promote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
	"github.com/medcad/medcad/reports"
	"github.com/medcad/medcad/stages"
)

// promotedMarker starts the comment a promotion posts on the merged PR.
const promotedMarker = "<!-- medcad:promoted -->"

// ProdRef is the moving git ref that names model's production tag.
func ProdRef(model string) string { return "refs/medcad/prod/" + model }

// RunOptions configure Run.
type RunOptions struct {
	GitRemote string         // git remote of the run records and the tags ("": origin)
	NoPush    bool           // verify and tag locally only; record nothing
	PR        int            // the merged pull request (0: find it from the commit)
	Key       string         // the signing secret, as in MEDCAD_SIGNING_KEY
	Env       *action.Env    // nil outside Actions: no outputs or summary
	GitHub    *action.Client // nil: no pull request looked up, no comment
	Log       io.Writer      // notes for the job log
	// Rollback > 0 makes a new version that restores version Rollback's
	// artifact, without gates; Reason and By are recorded.
	Rollback int
	Reason   string
	By       string
	// Before is the default branch's commit before the merge (a push
	// event's "before"): its gates judge the merged model, so a pull
	// request cannot loosen the rules it is promoted by. "": HEAD's first
	// parent (HEAD itself for a root commit).
	Before string
}

// Result is what Run did.
type Result struct {
	Promoted bool    `json:"promoted"`
	Record   *Record `json:"record"`
	Comment  string  `json:"comment,omitempty"`
	// Local: tagged in the local repository only (NoPush).
	Local bool `json:"-"`
}

// Run promotes the model manifest committed at HEAD of project p (see the
// package doc), or with o.Rollback restores an earlier version. A
// manifest that is production already is left alone. A refusal is a
// *RefusedError; a record that does not verify a *RecordError.
func Run(ctx context.Context, p *gitops.Project, o RunOptions) (*Result, error) {
	if o.GitRemote == "" {
		o.GitRemote = "origin"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	signer, err := NewSigner(o.Key)
	if err != nil {
		return nil, err
	}
	pub, err := Keys(p.Config.Promote.PublicKey, o.Key)
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
	_, noRemote := repo.Remote(o.GitRemote)
	if noRemote == nil {
		if err := gitrepo.Fetch(ctx, repo, remote, "+"+gitops.RunRefPrefix+"*:"+gitops.RunRefPrefix+"*", "+refs/tags/models/*:refs/tags/models/*"); err != nil {
			return nil, err
		}
	} else if !o.NoPush {
		return nil, fmt.Errorf("git remote %q: %w", o.GitRemote, noRemote)
	}
	head, err := gitrepo.Resolve(repo, "HEAD")
	if err != nil {
		return nil, err
	}
	store, err := p.Remote(ctx)
	if err != nil {
		return nil, fmt.Errorf("remote store: %w", err)
	}
	name := p.Config.Project.Model
	chain, err := LoadChain(ctx, store, name, pub)
	if err != nil {
		return nil, err
	}
	pm := promotion{p: p, o: o, repo: repo, remote: remote, store: store, chain: chain, head: head, signer: signer}
	if o.Rollback > 0 {
		return pm.rollback(ctx)
	}
	return pm.promote(ctx)
}

// promotion is one Run in progress.
type promotion struct {
	p      *gitops.Project
	o      RunOptions
	repo   *git.Repository
	remote gitrepo.Remote
	store  cas.Backend
	chain  *Chain
	head   *object.Commit
	signer *Signer
}

func (pm *promotion) promote(ctx context.Context) (*Result, error) {
	name := pm.p.Config.Project.Model
	head := pm.head
	file := gitops.ModelPath(name) + "@" + head.Hash.String()[:12]
	manifest, err := gitrepo.ReadFile(head, gitops.RepoPath(pm.repo, pm.p.Root, gitops.ModelPath(name)), 1<<20)
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
	prod := pm.chain.Production()
	if prod != nil && prod.Artifact == m.Artifact {
		fmt.Fprintf(pm.o.Log, "%s is production already (v%d, tag %s): nothing to promote\n", name, prod.Version, Tag(name, prod.Version))
		return &Result{Record: prod}, pm.mirror(ctx)
	}
	for _, r := range pm.chain.Records {
		if r.Artifact == m.Artifact {
			// Rolled back: main still holds the manifest until a new model
			// is merged; it is never promoted again by accident.
			fmt.Fprintf(pm.o.Log, "%s holds v%d's artifact, which v%d replaced: not promoted again (%v)\n", file, r.Version, prod.Version, ErrRolledBack)
			return &Result{Record: prod}, pm.mirror(ctx)
		}
	}
	if prod != nil && prod.Commit != head.Hash.String() && reachable(pm.repo, head.Hash.String(), prod.Commit, "") {
		fmt.Fprintf(pm.o.Log, "%s v%d was promoted from %.12s, which contains %.12s: nothing to promote\n", name, prod.Version, prod.Commit, head.Hash)
		return &Result{Record: prod}, nil
	}
	merged, err := pm.mergedPR(ctx, file)
	if err != nil {
		return nil, err
	}
	tree, err := TreeOf(ctx, pm.p, pm.repo, head)
	if err != nil {
		return nil, err
	}
	if err := Check(ctx, CheckOptions{File: file, Model: m, Repo: pm.repo, Remote: pm.store, Tree: tree, PRHead: merged.HeadSHA}); err != nil {
		return nil, err
	}
	gate, err := pm.gates(ctx, file, prod)
	if err != nil {
		return nil, err
	}
	if err := pm.adopt(ctx, tree); err != nil {
		return nil, err
	}
	rec := &Record{
		Artifact: m.Artifact, Eval: m.Eval, Manifest: cas.Sum(manifest), ManifestCommit: head.Hash.String(),
		Run: m.Run, CodeCommit: m.Commit, Commit: head.Hash.String(),
		PR: merged.Number, MergedBy: merged.MergedBy, Approvers: merged.Approvers,
		CIRunURL: m.Provenance.CIRunURL, Metrics: m.Metrics, Gate: gate,
	}
	return pm.record(ctx, rec)
}

// adopt makes the run-cache entries of the promoted tree's pipeline lock
// trusted, so clones of main restore the merged pull request's results
// (its own entries are in a namespace main never reads).
func (pm *promotion) adopt(ctx context.Context, t Tree) error {
	name := path.Join(t.Prefix, gitops.LockFile)
	data, err := gitrepo.ReadFile(t.Commit, name, 64<<20)
	if errors.Is(err, gitrepo.ErrNoFile) {
		return nil
	}
	if err != nil {
		return err
	}
	lock, err := gitops.ParseLock(name+"@"+t.Commit.Hash.String()[:12], data)
	if err != nil {
		return err
	}
	n, err := stages.AdoptLock(ctx, pm.store, lock)
	if err != nil {
		return err
	}
	fmt.Fprintf(pm.o.Log, "run cache: %d entries of %s adopted\n", n, name)
	return nil
}

// mergedPR finds the pull request merged as HEAD: required when the job
// talks to GitHub; without a client (a local promotion) it is o.PR, if
// any.
func (pm *promotion) mergedPR(ctx context.Context, file string) (action.MergedPR, error) {
	gh, n := pm.o.GitHub, pm.o.PR
	if gh == nil {
		return action.MergedPR{Number: n}, nil
	}
	sha := pm.head.Hash.String()
	if n == 0 {
		var err error
		n, err = gh.MergedPullRequest(ctx, sha)
		if errors.Is(err, action.ErrNoPullRequest) {
			return action.MergedPR{}, &RefusedError{File: file, Err: ErrNoPullRequest, Detail: fmt.Sprintf("commit %.12s", sha)}
		}
		if err != nil {
			return action.MergedPR{}, err
		}
	}
	pr, err := gh.PullRequestMerge(ctx, n)
	if errors.Is(err, action.ErrNoPullRequest) {
		return action.MergedPR{}, &RefusedError{File: file, Err: ErrNoPullRequest, Detail: fmt.Sprintf("pull request #%d is not merged", n)}
	}
	if err != nil {
		return action.MergedPR{}, err
	}
	if pr.HeadSHA != "" {
		// The head's history holds the code commit after a squash or a
		// rebase; GitHub and Gitea keep it under refs/pull/N/head.
		ref := fmt.Sprintf("refs/medcad/pull/%d", n)
		if err := gitrepo.Fetch(ctx, pm.repo, pm.remote, fmt.Sprintf("+refs/pull/%d/head:%s", n, ref)); err != nil {
			fmt.Fprintf(pm.o.Log, "note: refs/pull/%d/head could not be fetched: %v\n", n, err)
		}
	}
	return pr, nil
}

// gates evaluates the default branch's gates for HEAD's manifest against
// production, from both models' content-addressed evaluations.
func (pm *promotion) gates(ctx context.Context, file string, prod *Record) (GateRecord, error) {
	l := &reports.Loader{Dir: pm.p.Root, Repo: pm.repo, Store: pm.p.Store, Remote: pm.store, Config: pm.p.Config}
	cand, err := l.Rev(ctx, pm.head.Hash.String())
	if err != nil {
		return GateRecord{}, err
	}
	before := pm.o.Before
	if before == "" || strings.Trim(before, "0") == "" {
		before = pm.head.Hash.String()
		if len(pm.head.ParentHashes) > 0 {
			before = pm.head.ParentHashes[0].String()
		}
	}
	rules, err := l.PromoteAt(before)
	if err != nil {
		return GateRecord{}, fmt.Errorf("the gates before the merge (%.12s): %w", before, err)
	}
	in := reports.Input{Candidate: cand, Promote: rules, GatesFrom: fmt.Sprintf("the default branch before the merge (%.12s)", before)}
	g := GateRecord{}
	if prod != nil {
		if in.Base, err = l.Rev(ctx, prod.ManifestCommit); err != nil {
			return GateRecord{}, fmt.Errorf("production v%d: %w", prod.Version, err)
		}
		if in.Base.Model.Artifact != prod.Artifact {
			return GateRecord{}, &RecordError{Where: RecordKey(prod.Model, prod.Version), Err: ErrBrokenChain, Detail: fmt.Sprintf("its manifest at %.12s holds another artifact", prod.ManifestCommit)}
		}
		g.Baseline = prod.Version
	}
	c, err := reports.Compare(ctx, in)
	if err != nil {
		return GateRecord{}, err
	}
	var failed []string
	for _, r := range c.Verdict.Gates {
		g.Gates = append(g.Gates, r.Name+": "+r.Status)
	}
	for _, r := range c.Verdict.Failed() {
		failed = append(failed, r.Name+": "+r.Message)
	}
	if !c.Verdict.Promote {
		return GateRecord{}, &RefusedError{File: file, Err: ErrGateFailed, Detail: strings.Join(failed, "; ")}
	}
	g.Result = "pass"
	return g, nil
}

// rollback records a new version that restores an earlier one's artifact.
func (pm *promotion) rollback(ctx context.Context) (*Result, error) {
	o := pm.o
	name := pm.chain.Model
	where := fmt.Sprintf("%s v%d", name, o.Rollback)
	target, ok := pm.chain.Version(o.Rollback)
	if !ok {
		return nil, &RefusedError{File: where, Err: ErrRollbackTarget, Detail: fmt.Sprintf("%s has %d version(s)", name, len(pm.chain.Records))}
	}
	if o.By == "" {
		o.By = os.Getenv("GITHUB_ACTOR")
	}
	if strings.TrimSpace(o.Reason) == "" || o.By == "" {
		return nil, &RefusedError{File: where, Err: ErrNoReason}
	}
	if prod := pm.chain.Production(); prod.Artifact == target.Artifact {
		fmt.Fprintf(o.Log, "%s v%d already serves v%d's artifact: nothing to roll back\n", name, prod.Version, o.Rollback)
		return &Result{Record: prod}, pm.mirror(ctx)
	}
	rec := &Record{
		Artifact: target.Artifact, Eval: target.Eval, Manifest: target.Manifest, ManifestCommit: target.ManifestCommit,
		Run: target.Run, CodeCommit: target.CodeCommit, Commit: pm.head.Hash.String(), PR: o.PR,
		Metrics: target.Metrics, Gate: GateRecord{Result: "skipped (rollback)"},
		Rollback: &Rollback{Of: o.Rollback, Reason: strings.TrimSpace(o.Reason), By: o.By},
	}
	if o.Env != nil {
		rec.CIRunURL = o.Env.RunURL()
	}
	return pm.record(ctx, rec)
}

// record appends rec to the chain, mirrors the chain in git and announces
// the promotion.
func (pm *promotion) record(ctx context.Context, rec *Record) (*Result, error) {
	o := pm.o
	if rec.CIRunURL == "" && o.Env != nil {
		rec.CIRunURL = o.Env.RunURL()
	}
	rec.PromotedAt = time.Now().UTC().Truncate(time.Second)
	if o.NoPush {
		// A dry promotion: verified and tagged here, recorded nowhere else.
		rec.Schema, rec.Model, rec.Version, rec.Prev = RecordSchema, pm.chain.Model, pm.chain.Next(), pm.chain.head()
		pm.signer.Sign(rec)
		if err := tagRecord(pm.repo, rec); err != nil {
			return nil, err
		}
		return &Result{Record: rec, Local: true}, nil
	}
	if err := pm.chain.Append(ctx, pm.store, pm.signer, rec); err != nil {
		return nil, err
	}
	if err := pm.mirror(ctx); err != nil {
		return nil, fmt.Errorf("%s v%d is recorded on the store, but its git tag is not: %w (the next promotion run mirrors it)", rec.Model, rec.Version, err)
	}
	res := &Result{Promoted: true, Record: rec}
	verb := "promoted"
	if rec.Rollback != nil {
		verb = fmt.Sprintf("rolled back to v%d as", rec.Rollback.Of)
	}
	heading := fmt.Sprintf("### medcad: %s `%s` v%d\n\n", verb, action.CodeSpan(rec.Model), rec.Version)
	lineage := Lineage(rec)
	if o.GitHub != nil && rec.PR > 0 {
		cm, err := o.GitHub.AddComment(ctx, rec.PR, promotedMarker+"\n"+heading+lineage)
		if err != nil {
			return nil, err
		}
		res.Comment = cm.URL
	}
	if o.Env != nil {
		for _, kv := range [][2]string{{"model-digest", rec.Artifact.String()}, {"verdict", "promoted"}, {"version", fmt.Sprint(rec.Version)}} {
			if err := action.SetOutput(o.Env.OutputFile, kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
		if err := action.AppendSummary(o.Env.SummaryFile, heading+lineage); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(o.Log, "%s %s v%d (%s)\n", verb, rec.Model, rec.Version, Tag(rec.Model, rec.Version))
	return res, nil
}

// Record markers delimit the signed record in a tag's message.
const (
	recordBegin = "-----BEGIN MEDCAD PRODUCTION RECORD-----\n"
	recordEnd   = "-----END MEDCAD PRODUCTION RECORD-----\n"
)

// tagMessage is the annotated tag's message: a summary, then the record
// exactly as stored, so the chain resolves from git alone.
func tagMessage(r *Record) string {
	return fmt.Sprintf("%s v%d\n\n%s\n%s%s%s", r.Model, r.Version, Lineage(r), recordBegin, r.Encode(), recordEnd)
}

// tagRecord creates the local tag of r on the commit of its manifest.
func tagRecord(repo *git.Repository, r *Record) error {
	return gitrepo.Tag(repo, Tag(r.Model, r.Version), plumbing.NewHash(r.ManifestCommit), tagMessage(r))
}

// mirror creates and pushes the tag of every version that lacks one and
// points refs/medcad/prod/<model> at production's, so git holds the same
// chain as the store.
func (pm *promotion) mirror(ctx context.Context) error {
	if pm.o.NoPush {
		return nil
	}
	var specs []string
	for _, r := range pm.chain.Records {
		tag := plumbing.NewTagReferenceName(Tag(r.Model, r.Version))
		if _, err := pm.repo.Reference(tag, false); err != nil {
			if err := tagRecord(pm.repo, r); err != nil {
				return err
			}
		}
		specs = append(specs, tag.String()+":"+tag.String())
	}
	prod := pm.chain.Production()
	if prod == nil {
		return nil
	}
	tag, err := pm.repo.Reference(plumbing.NewTagReferenceName(Tag(prod.Model, prod.Version)), false)
	if err != nil {
		return err
	}
	ref := plumbing.ReferenceName(ProdRef(prod.Model))
	if err := pm.repo.Storer.SetReference(plumbing.NewHashReference(ref, tag.Hash())); err != nil {
		return err
	}
	specs = append(specs, "+"+ref.String()+":"+ref.String())
	return gitrepo.Push(ctx, pm.repo, pm.remote, specs...)
}

// LoadChainFromGit reads and verifies model's production chain from the
// tags models/<model>/vN of repo: the records their messages carry.
func LoadChainFromGit(repo *git.Repository, model string, pub PublicKey) (*Chain, error) {
	c := &Chain{Model: model, Source: "git tags"}
	for v := 1; ; v++ {
		name := Tag(model, v)
		ref, err := repo.Reference(plumbing.NewTagReferenceName(name), false)
		if err != nil {
			return c, nil
		}
		t, err := repo.TagObject(ref.Hash())
		if err != nil {
			return nil, &RecordError{Where: "tag " + name, Err: errors.New("not an annotated tag written by a promotion")}
		}
		_, rest, ok1 := strings.Cut(t.Message, recordBegin)
		data, _, ok2 := strings.Cut(rest, recordEnd)
		if !ok1 || !ok2 {
			return nil, &RecordError{Where: "tag " + name, Err: errors.New("holds no production record")}
		}
		if err := c.appendVerified(pub, "tag "+name, []byte(data)); err != nil {
			return nil, err
		}
		if t.Target.String() != c.Records[len(c.Records)-1].ManifestCommit {
			return nil, &RecordError{Where: "tag " + name, Err: ErrBrokenChain, Detail: "it points at another commit than its record's manifest_commit"}
		}
	}
}
