package gitrepo

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

func TestRemoteToken(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer srv.Close()
	_, repo, _ := history(t, 1)
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "gh", URLs: []string{srv.URL + "/o/r.git"}}); err != nil {
		t.Fatal(err)
	}
	const token = "ghs_secret123"
	ctx := context.Background()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
	tests := []struct {
		name string
		op   func(Remote) error
	}{
		{"fetch", func(r Remote) error { return Fetch(ctx, repo, r, "+refs/heads/main:refs/remotes/gh/main") }},
		{"push", func(r Remote) error { return Push(ctx, repo, r, "refs/heads/main:refs/heads/main") }},
		{"tag", func(r Remote) error { return TagAndPush(ctx, repo, r, "t1", headHash(t, repo), "t") }},
	}
	for _, tt := range tests {
		for _, tok := range []string{token, ""} {
			mu.Lock()
			auths = nil
			mu.Unlock()
			err := tt.op(Remote{Name: "gh", Token: tok})
			if err == nil {
				t.Fatalf("%s against a refusing server: no error", tt.name)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("%s: the error shows the token: %v", tt.name, err)
			}
			want := basic
			if tok == "" {
				want = ""
			}
			mu.Lock()
			if len(auths) == 0 || auths[0] != want {
				t.Errorf("%s with token %v: Authorization %q, want %q", tt.name, tok != "", auths, want)
			}
			mu.Unlock()
		}
	}

	// Printing or logging a Remote never shows the token.
	r := Remote{Name: "origin", Token: token}
	var log strings.Builder
	slog.New(slog.NewTextHandler(&log, nil)).Info("push", "remote", r)
	for _, s := range []string{fmt.Sprint(r), fmt.Sprintf("%v %+v %#v %s", r, r, r, r), log.String()} {
		if strings.Contains(s, token) {
			t.Errorf("token printed: %s", s)
		}
	}
}

func TestTokenOnlyOverHTTP(t *testing.T) {
	t.Parallel()
	bare, repo := newRepos(t)
	// A token is not sent to a local or ssh remote: fetching from the bare
	// repository works with one.
	if err := Fetch(context.Background(), repo, Remote{Name: "origin", Token: "tok"}, "+refs/heads/main:refs/remotes/origin/main"); err != nil {
		t.Errorf("fetch from %s with a token: %v", bare, err)
	}
	if _, err := (Remote{Name: "missing", Token: "tok"}).auth(repo); err == nil {
		t.Error("a missing remote gave no error")
	}
}

func headHash(t *testing.T, repo *git.Repository) plumbing.Hash {
	t.Helper()
	c, err := Resolve(repo, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	return c.Hash
}

// TestRemoteErrorsRedacted: a git server that echoes the credentials it
// was sent (the Authorization header, the URL with user and password) in
// the body of its refusal does not get them into the error.
func TestRemoteErrorsRedacted(t *testing.T) {
	t.Parallel()
	const (
		token = "ghs_Zx9secretTokenValue42"
		pass  = "hunter2-pass"
	)
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, pw, _ := r.BasicAuth()
			w.WriteHeader(status)
			fmt.Fprintf(w, "denied: you sent Authorization: %s\nfor https://%s:%s@%s%s\npassword %s, token %s\n",
				r.Header.Get("Authorization"), user, pw, r.Host, r.URL.Path, pw, pw)
		}))
		_, repo, _ := history(t, 1)
		withPass := strings.Replace(srv.URL, "http://", "http://bob:"+pass+"@", 1) + "/o/r.git"
		repo.CreateRemote(&config.RemoteConfig{Name: "tok", URLs: []string{srv.URL + "/o/r.git"}})
		repo.CreateRemote(&config.RemoteConfig{Name: "pw", URLs: []string{withPass}})
		ctx := context.Background()
		for _, r := range []Remote{{Name: "tok", Token: token}, {Name: "pw"}} {
			for op, err := range map[string]error{
				"fetch": Fetch(ctx, repo, r, "+refs/heads/main:refs/remotes/x/main"),
				"push":  Push(ctx, repo, r, "refs/heads/main:refs/heads/main"),
				"tag":   TagAndPush(ctx, repo, r, fmt.Sprintf("t%d", status), headHash(t, repo), "t"),
			} {
				if err == nil {
					t.Fatalf("%d %s %s: no error", status, r.Name, op)
				}
				msg := err.Error()
				for _, secret := range []string{token, pass, base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token)), base64.StdEncoding.EncodeToString([]byte("bob:" + pass))} {
					if strings.Contains(msg, secret) {
						t.Errorf("%d %s %s: %q is in the error: %s", status, r.Name, op, secret, msg)
					}
				}
				if !strings.Contains(msg, "denied") {
					t.Errorf("%d %s %s: the server's words are lost: %s", status, r.Name, op, msg)
				}
			}
		}
		srv.Close()
	}
}
