package gitrepo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/medcad/medcad/internal/redact"
)

// Remote is a git remote of the repository and the token to reach it
// with. Without a token, fetch and push use what the transport finds
// itself (none for http, the SSH agent for ssh).
type Remote struct {
	Name  string // e.g. "origin"
	Token string // for http(s) remotes; never logged or printed
}

// String is the remote's name: printing a Remote never shows the token.
func (r Remote) String() string { return r.Name }

// GoString is the remote's name, for %#v.
func (r Remote) GoString() string { return fmt.Sprintf("gitrepo.Remote{Name: %q}", r.Name) }

// LogValue keeps the token out of slog records.
func (r Remote) LogValue() slog.Value { return slog.StringValue(r.Name) }

// auth returns HTTP basic auth with the token for http(s) remotes, as
// GitHub expects for an installation or Actions token; nil without a
// token or for other transports.
func (r Remote) auth(repo *git.Repository) (transport.AuthMethod, error) {
	if r.Token == "" {
		return nil, nil
	}
	rem, err := repo.Remote(r.Name)
	if err != nil {
		return nil, fmt.Errorf("git remote %q: %w", r.Name, err)
	}
	urls := rem.Config().URLs
	if len(urls) == 0 {
		return nil, nil
	}
	u, err := url.Parse(urls[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, nil
	}
	return &githttp.BasicAuth{Username: "x-access-token", Password: r.Token}, nil
}

// redact masks credentials in err's message (errors.Is and errors.As see
// through): git servers put the body of a 401, 403 or 404 answer into the
// error, and some echo what they were sent. The known secrets are the
// token, the passwords of the remote's URLs and their Basic encodings.
func (r Remote) redact(repo *git.Repository, err error) error {
	if err == nil {
		return nil
	}
	var known []string
	if r.Token != "" {
		known = append(known, r.Token, base64.StdEncoding.EncodeToString([]byte("x-access-token:"+r.Token)))
	}
	if rem, e := repo.Remote(r.Name); e == nil {
		for _, raw := range rem.Config().URLs {
			u, e := url.Parse(raw)
			if e != nil || u.User == nil {
				continue
			}
			if pw, ok := u.User.Password(); ok {
				known = append(known, pw, base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)))
			}
		}
	}
	return redact.Error(err, known...)
}

// list lists the remote's refs (git ls-remote).
func (r Remote) list(ctx context.Context, repo *git.Repository) ([]*plumbing.Reference, error) {
	auth, err := r.auth(repo)
	if err != nil {
		return nil, err
	}
	rem, err := repo.Remote(r.Name)
	if err != nil {
		return nil, fmt.Errorf("git remote %q: %w", r.Name, err)
	}
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: auth})
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return nil, r.redact(repo, fmt.Errorf("git ls-remote %s: %w", r.Name, err))
	}
	return refs, nil
}

// Fetch fetches refspecs from the remote, without tags; being up to date
// is no error.
func Fetch(ctx context.Context, repo *git.Repository, r Remote, specs ...string) error {
	auth, err := r.auth(repo)
	if err != nil {
		return err
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{RemoteName: r.Name, RefSpecs: refSpecs(specs), Auth: auth, Tags: git.NoTags})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return r.redact(repo, fmt.Errorf("git fetch %s %s: %w", r.Name, strings.Join(specs, " "), err))
	}
	return nil
}

// Push pushes refspecs to the remote; being up to date is no error.
func Push(ctx context.Context, repo *git.Repository, r Remote, specs ...string) error {
	auth, err := r.auth(repo)
	if err != nil {
		return err
	}
	err = repo.PushContext(ctx, &git.PushOptions{RemoteName: r.Name, RefSpecs: refSpecs(specs), Auth: auth})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return r.redact(repo, fmt.Errorf("git push %s %s: %w", r.Name, strings.Join(specs, " "), err))
	}
	return nil
}

func refSpecs(specs []string) []config.RefSpec {
	rs := make([]config.RefSpec, len(specs))
	for i, s := range specs {
		rs[i] = config.RefSpec(s)
	}
	return rs
}
