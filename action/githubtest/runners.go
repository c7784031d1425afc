package githubtest

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
)

// SelfHostedRunner is a repository's self-hosted runner as the fake holds
// it. Gitea answers 405 to generate-jitconfig, so just-in-time
// registration is served here.
type SelfHostedRunner struct {
	ID     int64
	Name   string
	Status string // "offline" until SetRunnerStatus
	Busy   bool
	Group  int64
	Labels []string
	JIT    string // the encoded config handed out
}

type actionsState struct {
	runners []SelfHostedRunner
	runs    map[int64]string // workflow run → status
	jitFail []int            // statuses the next JIT requests answer
}

var (
	jitRE     = regexp.MustCompile(repo + `/actions/runners/generate-jitconfig$`)
	runnersRE = regexp.MustCompile(repo + `/actions/runners$`)
	runnerRE  = regexp.MustCompile(repo + `/actions/runners/(\d+)$`)
	runRE     = regexp.MustCompile(repo + `/actions/runs/(\d+)$`)
)

// FailJIT makes the next generate-jitconfig requests answer these
// statuses (403, 422, …) in turn.
func (s *Server) FailJIT(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions.jitFail = append(s.actions.jitFail, statuses...)
}

// AddRunner registers a runner as if someone else had; it returns its ID.
func (s *Server) AddRunner(name, status string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.actions.runners = append(s.actions.runners, SelfHostedRunner{ID: s.nextID, Name: name, Status: status, Group: 1})
	return s.nextID
}

// SetRunnerStatus sets the status of the runner called name ("online" is
// what a runner that connected shows); false if there is none.
func (s *Server) SetRunnerStatus(name, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.actions.runners {
		if s.actions.runners[i].Name == name {
			s.actions.runners[i].Status = status
			return true
		}
	}
	return false
}

// Runners are the registered self-hosted runners.
func (s *Server) Runners() []SelfHostedRunner {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.actions.runners)
}

// SetRunStatus sets a workflow run's status ("in_progress", "completed").
func (s *Server) SetRunStatus(id int64, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.actions.runs == nil {
		s.actions.runs = map[int64]string{}
	}
	s.actions.runs[id] = status
}

func runnerJSON(r SelfHostedRunner) map[string]any {
	labels := []map[string]any{}
	for _, l := range r.Labels {
		labels = append(labels, map[string]any{"name": l, "type": "custom"})
	}
	return map[string]any{"id": r.ID, "name": r.Name, "os": "Linux", "status": r.Status, "busy": r.Busy, "labels": labels}
}

// serveActions serves the self-hosted runner and workflow run routes; it
// reports whether it answered. s.mu is held.
func (s *Server) serveActions(w http.ResponseWriter, r *http.Request, reply func(int, any), decode func(any) bool) bool {
	a := &s.actions
	path := r.URL.Path
	switch {
	case jitRE.MatchString(path) && r.Method == "POST":
		var b struct {
			Name          string   `json:"name"`
			RunnerGroupID int64    `json:"runner_group_id"`
			Labels        []string `json:"labels"`
		}
		if !decode(&b) {
			return true
		}
		if len(a.jitFail) > 0 {
			code := a.jitFail[0]
			a.jitFail = a.jitFail[1:]
			reply(code, map[string]any{"message": http.StatusText(code)})
			return true
		}
		if b.Name == "" || len(b.Labels) == 0 || len(b.Labels) > 100 || b.RunnerGroupID != 1 {
			reply(422, map[string]any{"message": "Validation Failed"})
			return true
		}
		if slices.ContainsFunc(a.runners, func(x SelfHostedRunner) bool { return x.Name == b.Name }) {
			reply(409, map[string]any{"message": "Already exists - A runner with the name " + b.Name + " already exists."})
			return true
		}
		s.nextID++
		rn := SelfHostedRunner{ID: s.nextID, Name: b.Name, Status: "offline", Group: b.RunnerGroupID, Labels: b.Labels,
			JIT: fmt.Sprintf("jit-%d-secret", s.nextID)}
		a.runners = append(a.runners, rn)
		reply(201, map[string]any{"runner": runnerJSON(rn), "encoded_jit_config": rn.JIT})
	case runnersRE.MatchString(path) && r.Method == "GET":
		var out []map[string]any
		for _, rn := range a.runners {
			out = append(out, runnerJSON(rn))
		}
		total := len(out)
		reply(200, map[string]any{"total_count": total, "runners": page(s, w, r, out)})
	case runnerRE.MatchString(path):
		id, _ := strconv.ParseInt(runnerRE.FindStringSubmatch(path)[1], 10, 64)
		i := slices.IndexFunc(a.runners, func(x SelfHostedRunner) bool { return x.ID == id })
		switch {
		case i < 0:
			reply(404, map[string]any{"message": "Not Found"})
		case r.Method == "DELETE":
			a.runners = slices.Delete(a.runners, i, i+1)
			reply(204, nil)
		default:
			reply(200, runnerJSON(a.runners[i]))
		}
	case runRE.MatchString(path) && r.Method == "GET":
		id, _ := strconv.ParseInt(runRE.FindStringSubmatch(path)[1], 10, 64)
		st, ok := a.runs[id]
		if !ok {
			reply(404, map[string]any{"message": "Not Found"})
			return true
		}
		reply(200, map[string]any{"id": id, "status": st})
	default:
		return false
	}
	return true
}
