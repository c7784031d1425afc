package redact

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	t.Parallel()
	const (
		ghs   = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
		pat   = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF"
		basic = "eC1hY2Nlc3MtdG9rZW46Z2hzXzE2QzdlNDJG"
		aws   = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	)
	tests := []struct {
		name, in string
		secrets  []string // must not survive
		keep     []string // must survive
	}{
		{"echoed token", `{"message":"Bad credentials: you sent: token ` + ghs + `"}`, []string{ghs, "16C7e42F"}, []string{"Bad credentials", "you sent"}},
		{"bare tokens", "ghp_" + strings.Repeat("a1", 18) + " gho_" + strings.Repeat("B2", 18) + " " + pat, []string{"a1a1a1", "B2B2B2", "11ABCDEFG"}, nil},
		{"token word", "token 0123456789abcdef0123456789abcdef01234567 rejected", []string{"0123456789abcdef"}, []string{"rejected"}},
		{"token prose", "token expired; token required", nil, []string{"token expired; token required"}},
		{"bearer", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", []string{"eyJhbGci"}, []string{"Bearer"}},
		{"authorization header", "request had Authorization: Basic " + basic + "\nnext line", []string{basic}, []string{"next line", "Authorization"}},
		{"authorization json", `{"Authorization": "token abcdef", "x": 1}`, []string{"abcdef"}, []string{`"x": 1`}},
		{"basic alone", "credentials Basic " + basic + " refused", []string{basic}, []string{"refused"}},
		{"url userinfo", `unexpected client error: unexpected requesting "https://x-access-token:s3cr3t-pass@git.example.org/o/r.git/info/refs" status code: 401`, []string{"s3cr3t-pass", "x-access-token:"}, []string{"git.example.org/o/r.git", "401"}},
		{"url password with slash", "https://AKID:wJal/rXUt+nFEMI@s3.example.org/b", []string{"wJal/rXUt", "AKID"}, []string{"s3.example.org/b"}},
		{"url path with at", "see https://example.org/users/@bob and http://h:8080/x", nil, []string{"https://example.org/users/@bob", "http://h:8080/x"}},
		{"url user only", "http://ghtoken123@host/x", []string{"ghtoken123"}, []string{"host/x"}},
		{"aws key=value", "aws_secret_access_key=" + aws + " region=us-east-1", []string{aws}, []string{"region=us-east-1"}},
		{"aws xml", "<Error><SecretAccessKey>" + aws + "</SecretAccessKey><SessionToken>FwoGZX</SessionToken></Error>", []string{aws, "FwoGZX"}, []string{"<Error>"}},
		{"amz security token", "x-amz-security-token:FwoGZXIvYXdzEBYaDH\nhost:s3", []string{"FwoGZXIvYXdzEBYaDH"}, []string{"host:s3"}},
		{"password", "password=hunter22&user=bob", []string{"hunter22"}, []string{"user=bob"}},
		{"commit ids stay", "ref 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12 not found", nil, []string{"2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := String(tc.in)
			for _, s := range tc.secrets {
				if strings.Contains(got, s) {
					t.Errorf("String(%q) = %q: %q survived", tc.in, got, s)
				}
			}
			for _, s := range tc.keep {
				if !strings.Contains(got, s) {
					t.Errorf("String(%q) = %q: %q lost", tc.in, got, s)
				}
			}
		})
	}
}

func TestKnown(t *testing.T) {
	t.Parallel()
	if got := String("you sent deadbeefcafe", "deadbeefcafe"); got != "you sent "+Mask {
		t.Errorf("known secret: %q", got)
	}
	if got := String("a b", "a", ""); got != "a b" {
		t.Errorf("short known secrets must not mask text: %q", got)
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	if Error(nil) != nil {
		t.Fatal("Error(nil) != nil")
	}
	inner := &fs.PathError{Op: "open", Path: "https://u:hunter22@h/x", Err: fs.ErrNotExist}
	err := Error(inner)
	if strings.Contains(err.Error(), "hunter22") {
		t.Errorf("%q", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("errors.Is lost")
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Error("errors.As lost")
	}
}
