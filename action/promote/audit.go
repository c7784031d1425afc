package promote

import (
	"context"
	"fmt"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/reports"
)

// AuditInput gathers what 'medcad audit' documents about version r of
// chain c (read and verified by ReadChain): the manifest r promoted,
// checked against r's digest, and its evaluation, dataset pointers and
// environment lock as committed with it, read through reports.Loader.
func AuditInput(ctx context.Context, p *gitops.Project, c *Chain, r *Record) (reports.AuditInput, error) {
	repo, err := p.Repo()
	if err != nil {
		return reports.AuditInput{}, err
	}
	prefix := gitops.RepoPrefix(repo, p.Root)
	if _, err := ManifestOf(repo, prefix, r); err != nil {
		return reports.AuditInput{}, err
	}
	l := &reports.Loader{Dir: p.Root, Repo: repo, Store: p.Store, Config: p.Config}
	if remote, err := p.Remote(ctx); err == nil {
		l.Remote = remote
	}
	side, err := l.Rev(ctx, r.ManifestCommit)
	if err != nil {
		return reports.AuditInput{}, fmt.Errorf("%s v%d: %w", r.Model, r.Version, err)
	}
	in := reports.AuditInput{Side: side, Source: c.Source, PublicKey: p.Config.Promote.PublicKey}
	for i, rec := range c.Records {
		ar := auditRecord(rec)
		if i < len(c.digests) {
			ar.Digest = c.digests[i].String()
		}
		in.Chain = append(in.Chain, ar)
		if rec == r {
			in.Record = ar
		}
	}
	if in.Record.Version == 0 {
		return reports.AuditInput{}, fmt.Errorf("%s v%d is not a version of the chain read from %s", r.Model, r.Version, c.Source)
	}
	return in, nil
}

// auditRecord is r as the audit document shows it.
func auditRecord(r *Record) reports.AuditRecord {
	a := reports.AuditRecord{
		Model: r.Model, Version: r.Version, Tag: Tag(r.Model, r.Version),
		Artifact: r.Artifact.String(), Eval: gitops.DigestText(r.Eval), Manifest: r.Manifest.String(), ManifestCommit: r.ManifestCommit,
		Run: r.Run, CodeCommit: r.CodeCommit, Commit: r.Commit, PR: r.PR, MergedBy: r.MergedBy, Approvers: r.Approvers,
		CIRunURL: r.CIRunURL, Metrics: r.Metrics, GateResult: r.Gate.Result, GateBaseline: r.Gate.Baseline, Gates: r.Gate.Gates,
		Prev: gitops.DigestText(r.Prev), PromotedAt: r.PromotedAt, Signature: r.Signature,
	}
	if rb := r.Rollback; rb != nil {
		a.Rollback = &reports.AuditRollback{Of: rb.Of, Reason: rb.Reason, By: rb.By}
	}
	return a
}
