package runner

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/action/githubtest"
	"github.com/medcad/medcad/action/runner/awsfake"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas/local"
)

// testAWS is an aws.Config for the fakes: static credentials (requests are
// signed all the same) and quick retries.
func testAWS() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		HTTPClient:  awshttp.NewBuildableClient(),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxBackoff = 5 * time.Millisecond
				o.RateLimiter = ratelimit.None
			})
		},
	}
}

// world is one test's AWS and GitHub, and the deps start, stop and reap
// use on them.
type world struct {
	t   *testing.T
	aws *awsfake.Server
	gh  *githubtest.Server
	d   *Deps
	cfg gitops.Runner
	run Run
	now time.Time
}

func newWorld(t *testing.T, o awsfake.Options) *world {
	t.Helper()
	w := &world{t: t, now: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	if o.Subnets == nil {
		o.Subnets = map[string]string{"subnet-0aaaaaaaaaaaaaaaa": "us-east-1a", "subnet-0bbbbbbbbbbbbbbbb": "us-east-1b"}
	}
	o.Now = func() time.Time { return w.clock() }
	w.aws = awsfake.Start(t, o)
	w.gh = githubtest.Start(t, githubtest.Options{})
	e, s := Clients(testAWS(), w.aws.URL)
	gh, err := action.NewClient(action.ClientOptions{APIURL: w.gh.URL, Repository: "lab/ct", Token: "app-token"})
	if err != nil {
		t.Fatal(err)
	}
	remote, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w.d = &Deps{EC2: e, SSM: s, GitHub: gh, Ledger: StoreLedger{Backend: remote}, Now: w.clock, Poll: 10 * time.Millisecond}
	w.cfg = gitops.Default().Runner
	w.cfg.Provider, w.cfg.AMI = "ec2", "ami-0123456789abcdef0"
	w.cfg.IAMInstanceProfile = "medcad-runner"
	w.run = Run{Repository: "lab/ct", ID: 4242, Attempt: 1, PR: 7}
	return w
}

var clockMu sync.Mutex

func (w *world) clock() time.Time {
	clockMu.Lock()
	defer clockMu.Unlock()
	return w.now
}

func (w *world) advance(d time.Duration) {
	clockMu.Lock()
	defer clockMu.Unlock()
	w.now = w.now.Add(d)
}

func (w *world) opts() StartOptions {
	return StartOptions{Config: w.cfg, Run: w.run, Region: "us-east-1", RegisterTimeout: 2 * time.Second}
}

// boot plays the instances' side until the test ends: a running instance
// whose parameter appears reads and deletes it, and its runner comes
// online — unless never says the instance with that index (1-based
// launch order) never registers.
func (w *world) boot(never ...int) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w.t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			params := w.aws.Parameters()
			for i, in := range w.aws.Instances() {
				skip := false
				for _, n := range never {
					skip = skip || n == i+1
				}
				p, ok := params[ParameterName(w.cfg.SSMPrefix, in.ID)]
				if skip || !ok || in.State != "running" {
					continue
				}
				for _, r := range w.gh.Runners() {
					if r.Name == RunnerName(in.ID) && r.JIT == p.Value {
						w.aws.DeleteParameterAs(p.Name)
						w.gh.SetRunnerStatus(r.Name, "online")
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

func (w *world) launched() []awsfake.Instance { return w.aws.Instances() }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
