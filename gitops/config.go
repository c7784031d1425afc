// Package gitops holds medcad's committed state and its git access: the
// project config medcad.toml, dataset pointers, model manifests, the
// pipeline lock and environment lock digests.
package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// ConfigFile is the project config's file name at the repository root.
const ConfigFile = "medcad.toml"

// maxConfigBytes bounds how much of a config file is read.
const maxConfigBytes = 1 << 20

// ErrNoConfig means the directory holds no medcad.toml.
var ErrNoConfig = errors.New("no medcad.toml here (run 'medcad init' first)")

// Config is the project configuration, medcad.toml.
type Config struct {
	Project ProjectSection            `toml:"project" json:"project"`
	Remote  Remote                    `toml:"remote" json:"remote"`
	Data    Data                      `toml:"data" json:"data"`
	Env     Env                       `toml:"env" json:"env"`
	Stages  []Stage                   `toml:"stage" json:"stage"`
	Params  map[string]map[string]any `toml:"params" json:"params"`
	Promote Promote                   `toml:"promote" json:"promote"`
	GitHub  GitHub                    `toml:"github" json:"github"`
	Runner  Runner                    `toml:"runner" json:"runner"`
}

// ProjectSection ([project]) names the project and its model.
type ProjectSection struct {
	Name          string `toml:"name" json:"name"`
	Model         string `toml:"model" json:"model"`                   // model name: models/<model>.model.toml
	DefaultBranch string `toml:"default_branch" json:"default_branch"` // the production branch
	TrainStage    string `toml:"train_stage" json:"train_stage"`       // its outs are the model artifact
	EvalStage     string `toml:"eval_stage" json:"eval_stage"`         // its outs are the per-case evaluation
}

// Remote is the shared object store.
type Remote struct {
	URL       string `toml:"url" json:"url"` // file:///… or s3://bucket/prefix; MEDCAD_REMOTE overrides
	Region    string `toml:"region" json:"region"`
	Endpoint  string `toml:"endpoint" json:"endpoint"` // custom S3 endpoint (MinIO, versitygw, …)
	PathStyle bool   `toml:"path_style" json:"path_style"`
	Jobs      int    `toml:"jobs" json:"jobs"` // parallel transfers
}

// Data holds the rules for ingesting data batches.
type Data struct {
	LabelRules  string `toml:"label_rules" json:"label_rules"`   // labelling rules version of new batches
	DeidProfile string `toml:"deid_profile" json:"deid_profile"` // de-identification profile
	KeyFile     string `toml:"key_file" json:"key_file"`         // project key for pseudonyms and UIDs
	Strict      bool   `toml:"strict" json:"strict"`             // series warnings are errors
	Link        string `toml:"link" json:"link"`                 // data/ files and the cache: "copy" or "hardlink"
	// Holdout is the fraction of labelled cases held out for evaluation;
	// HoldoutMin the fewest held out once the project has 2×HoldoutMin
	// labelled cases (see AssignSplit). data add records each new case's
	// side in its pointer; a recorded side never changes.
	Holdout    float64 `toml:"holdout" json:"holdout"`
	HoldoutMin int     `toml:"holdout_min" json:"holdout_min"`
}

// Env lists the environment lock files whose digest keys env = true stages,
// and the variables every stage process receives from medcad's environment.
type Env struct {
	Lock []string `toml:"lock" json:"lock"`
	Pass []string `toml:"pass" json:"pass"` // variable names passed to every stage
}

// Stage is one pipeline stage.
type Stage struct {
	Name    string   `toml:"name" json:"name"`
	Run     string   `toml:"run" json:"run"`
	Deps    []string `toml:"deps" json:"deps"`
	Params  []string `toml:"params" json:"params"`
	Outs    []string `toml:"outs" json:"outs"`
	Foreach string   `toml:"foreach" json:"foreach"`   // "" or "case"
	Env     bool     `toml:"env" json:"env"`           // env lock digest is part of the cache key
	EnvPass []string `toml:"env_pass" json:"env_pass"` // variable names passed to this stage
}

// Promote holds the promotion gates.
type Promote struct {
	Gates []Gate `toml:"gate" json:"gate"`
	// MaxCaseDrop is the most any single case may lose on each metric
	// (in the metric's unit); zero disables the per-case rule.
	MaxCaseDrop map[string]float64 `toml:"max_case_drop" json:"max_case_drop"`
	// PublicKey verifies the production records the promotion job signs
	// ("ed25519:…", from 'medcad model keygen').
	PublicKey string `toml:"public_key" json:"public_key,omitempty"`
}

// Gate is one promotion rule.
type Gate struct {
	Metric    string  `toml:"metric" json:"metric"`
	Stat      string  `toml:"stat" json:"stat"`           // mean | median | min | max | p05 | p95
	Rule      string  `toml:"rule" json:"rule"`           // no-worse | better | at-least | at-most
	Tolerance float64 `toml:"tolerance" json:"tolerance"` // for no-worse / better
	Value     float64 `toml:"value" json:"value"`         // for at-least / at-most
}

// GitHub holds the settings of the PR integration.
type GitHub struct {
	CheckName    string `toml:"check_name" json:"check_name"`
	AssetsBranch string `toml:"assets_branch" json:"assets_branch"`
	ForkPolicy   string `toml:"fork_policy" json:"fork_policy"` // evaluate-only | label
}

// Runner holds the settings of ephemeral EC2 GPU runners (medcad runner
// start|stop|reap|agent).
type Runner struct {
	Provider      string   `toml:"provider" json:"provider"` // "" (GitHub-hosted) or "ec2"
	Region        string   `toml:"region" json:"region"`
	AMI           string   `toml:"ami" json:"ami"`
	SecurityGroup string   `toml:"security_group" json:"security_group"`
	Labels        []string `toml:"labels" json:"labels"`
	TTLMinutes    int      `toml:"ttl_minutes" json:"ttl_minutes"`
	// InstanceTypes and Subnets are tried in order, types × subnets, until
	// one launches.
	InstanceTypes []string `toml:"instance_types" json:"instance_types"`
	Subnets       []string `toml:"subnets" json:"subnets"`
	Market        string   `toml:"market" json:"market"`                 // "on-demand", "spot" or "spot-then-on-demand"
	MaxSpotPrice  float64  `toml:"max_spot_price" json:"max_spot_price"` // USD an hour; 0: the on-demand price
	// USDPerHour overrides the built-in on-demand price of an instance
	// type, USD an hour (another region, a discount, a type not listed).
	USDPerHour map[string]float64 `toml:"usd_per_hour" json:"usd_per_hour,omitempty"`
	// IAMInstanceProfile is the instance's profile (name or ARN): SSM on
	// its own parameter, terminate itself, S3 on the data prefixes.
	IAMInstanceProfile     string  `toml:"iam_instance_profile" json:"iam_instance_profile"`
	RunnerGroupID          int64   `toml:"runner_group_id" json:"runner_group_id"`
	RegisterTimeoutMinutes int     `toml:"register_timeout_minutes" json:"register_timeout_minutes"`
	IdleTimeoutMinutes     int     `toml:"idle_timeout_minutes" json:"idle_timeout_minutes"`
	SSMPrefix              string  `toml:"ssm_prefix" json:"ssm_prefix"`
	VolumeKMSKey           string  `toml:"volume_kms_key" json:"volume_kms_key"` // "": the account's default EBS key
	VolumeGiB              int     `toml:"volume_gib" json:"volume_gib"`
	AssociatePublicIP      bool    `toml:"associate_public_ip" json:"associate_public_ip"`
	MaxConcurrent          int     `toml:"max_concurrent" json:"max_concurrent"`           // managed instances at once; 0: no limit
	MaxUSDPerPR            float64 `toml:"max_usd_per_pr" json:"max_usd_per_pr"`           // 0: no limit
	MaxUSDPerMonth         float64 `toml:"max_usd_per_month" json:"max_usd_per_month"`     // 0: no limit
	RequireSameRegion      bool    `toml:"require_same_region" json:"require_same_region"` // the data bucket's region
	ResumeOnInterrupt      bool    `toml:"resume_on_interrupt" json:"resume_on_interrupt"`
}

// Default returns the config every project starts from; Load applies the
// file on top of it. This is the one place defaults live.
func Default() Config {
	return Config{
		Project: ProjectSection{Model: "bone", DefaultBranch: "main", TrainStage: "train", EvalStage: "evaluate"},
		Remote:  Remote{URL: "file://.medcad/remote", Region: "us-east-1", Jobs: 32},
		Data:    Data{LabelRules: "v2", DeidProfile: "ps3.15-basic", KeyFile: ".medcad/project.key", Link: "copy", Holdout: 0.2, HoldoutMin: 3},
		Params:  map[string]map[string]any{},
		GitHub:  GitHub{CheckName: "medcad", AssetsBranch: "medcad-assets", ForkPolicy: "evaluate-only"},
		Runner: Runner{InstanceTypes: []string{"g5.xlarge"}, Market: "on-demand", TTLMinutes: 120, Labels: []string{"self-hosted", "gpu"},
			RunnerGroupID: 1, RegisterTimeoutMinutes: 10, IdleTimeoutMinutes: 15, SSMPrefix: "/medcad/runners", VolumeGiB: 100},
	}
}

// ConfigError is a problem at a place in a config file.
type ConfigError struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// LoadConfig reads dir/medcad.toml strictly and applies defaults.
func LoadConfig(dir string) (Config, error) {
	data, err := readBounded(filepath.Join(dir, ConfigFile), maxConfigBytes)
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("%s: %w", dir, ErrNoConfig)
	}
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(ConfigFile, data)
}

var badTypeRE = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key "([^"]+)"\): incompatible types: TOML value has type (\S+); destination has type (\S+)$`)

// ParseConfig decodes a config file strictly: unknown keys, wrong types and
// invalid values are errors naming the file, line and key.
func ParseConfig(name string, data []byte) (Config, error) {
	cfg := Default()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, &ConfigError{File: name, Line: pe.Position.Line, Msg: pe.Message}
		}
		if m := badTypeRE.FindStringSubmatch(err.Error()); m != nil {
			return Config{}, &ConfigError{File: name, Line: keyLine(data, m[1]), Msg: fmt.Sprintf("key %q: wrong type: %s, want %s", m[1], tomlTypeName(m[2]), strings.Replace(m[3], "slice", "array", 1))}
		}
		return Config{}, &ConfigError{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	for _, k := range md.Undecoded() {
		if len(k) > 1 && k[0] == "params" {
			continue // params tables hold free-form values
		}
		return Config{}, &ConfigError{File: name, Line: keyLine(data, strings.Join(k, ".")), Msg: unknownKeyMsg(k)}
	}
	if err := cfg.validate(); err != nil {
		var ve *valueError
		if errors.As(err, &ve) {
			return Config{}, &ConfigError{File: name, Line: keyLine(data, ve.key), Msg: ve.Error()}
		}
		return Config{}, &ConfigError{File: name, Msg: err.Error()}
	}
	return cfg, nil
}

// tomlTypeName turns the Go type the TOML library names into the TOML
// type a user wrote.
func tomlTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"):
		return "integer"
	case strings.HasPrefix(goType, "float"):
		return "float"
	case goType == "bool":
		return "boolean"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "map"):
		return "table"
	case strings.Contains(goType, "Time"):
		return "datetime"
	}
	return goType
}

// unknownKeyMsg phrases an unknown key with the table it appeared in.
func unknownKeyMsg(k toml.Key) string {
	if len(k) == 1 {
		return fmt.Sprintf("unknown key %q", k[0])
	}
	return fmt.Sprintf("unknown key %q in [%s]", k[len(k)-1], strings.Join(k[:len(k)-1], "."))
}

// valueError is an invalid value at a dotted key.
type valueError struct {
	key string
	msg string
}

func (e *valueError) Error() string { return fmt.Sprintf("key %q: %s", e.key, e.msg) }

func invalid(key, format string, args ...any) error {
	return &valueError{key: key, msg: fmt.Sprintf(format, args...)}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

var envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validPass checks the variable names a project passes to stages. MEDCAD_
// names are medcad's own: the stage contract sets its MEDCAD_* variables,
// and medcad's settings (the signing key, the remote) never reach a stage.
func validPass(key string, names []string) error {
	for _, n := range names {
		if !envVarRE.MatchString(n) {
			return invalid(key, "%q is not an environment variable name (letters, digits, _)", n)
		}
		if strings.HasPrefix(strings.ToUpper(n), "MEDCAD_") {
			return invalid(key, "%q: MEDCAD_ variables are medcad's own and cannot be passed to a stage", n)
		}
	}
	return nil
}

// validate checks values that decode but make no sense.
func (c *Config) validate() error {
	if c.Project.Name != "" && !nameRE.MatchString(c.Project.Name) {
		return invalid("project.name", "%q is not a valid name (letters, digits, . _ -)", c.Project.Name)
	}
	if !nameRE.MatchString(c.Project.Model) {
		return invalid("project.model", "%q is not a valid model name (letters, digits, . _ -)", c.Project.Model)
	}
	if !strings.HasPrefix(c.Remote.URL, "file://") && !strings.HasPrefix(c.Remote.URL, "s3://") {
		return invalid("remote.url", "%q: want file://PATH or s3://BUCKET/PREFIX", c.Remote.URL)
	}
	if c.Remote.Jobs < 1 || c.Remote.Jobs > 1024 {
		return invalid("remote.jobs", "%d: want 1…1024", c.Remote.Jobs)
	}
	if c.Data.DeidProfile != "ps3.15-basic" {
		return invalid("data.deid_profile", "%q: the supported profile is \"ps3.15-basic\"", c.Data.DeidProfile)
	}
	if c.Data.Link != "copy" && c.Data.Link != "hardlink" {
		return invalid("data.link", "%q: want \"copy\" or \"hardlink\"", c.Data.Link)
	}
	if math.IsNaN(c.Data.Holdout) || c.Data.Holdout < 0 || c.Data.Holdout >= 1 {
		return invalid("data.holdout", "%v: want a fraction in [0, 1)", c.Data.Holdout)
	}
	if c.Data.HoldoutMin < 0 || c.Data.HoldoutMin > 10000 {
		return invalid("data.holdout_min", "%d: want 0…10000", c.Data.HoldoutMin)
	}
	if err := validPass("env.pass", c.Env.Pass); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, s := range c.Stages {
		if !nameRE.MatchString(s.Name) {
			return invalid("stage.name", "%q is not a valid stage name", s.Name)
		}
		if seen[s.Name] {
			return invalid("stage.name", "stage %q declared twice", s.Name)
		}
		seen[s.Name] = true
		if strings.TrimSpace(s.Run) == "" {
			return invalid("stage.run", "stage %q has no run command", s.Name)
		}
		if s.Foreach != "" && s.Foreach != "case" {
			return invalid("stage.foreach", "stage %q: %q: want \"\" or \"case\"", s.Name, s.Foreach)
		}
		for _, p := range s.Params {
			if _, ok := c.Params[p]; !ok {
				return invalid("stage.params", "stage %q uses [params.%s], which is not defined", s.Name, p)
			}
		}
		if err := validPass("stage.env_pass", s.EnvPass); err != nil {
			return err
		}
	}
	for _, g := range c.Promote.Gates {
		if g.Metric == "" {
			return invalid("promote.gate.metric", "a gate needs a metric")
		}
		if !slices.Contains([]string{"mean", "median", "min", "max", "p05", "p95"}, g.Stat) {
			return invalid("promote.gate.stat", "%q: want mean, median, min, max, p05 or p95", g.Stat)
		}
		if !slices.Contains([]string{"no-worse", "better", "at-least", "at-most"}, g.Rule) {
			return invalid("promote.gate.rule", "%q: want no-worse, better, at-least or at-most", g.Rule)
		}
		if g.Tolerance < 0 {
			return invalid("promote.gate.tolerance", "%g: must not be negative", g.Tolerance)
		}
	}
	if !slices.Contains([]string{"evaluate-only", "label"}, c.GitHub.ForkPolicy) {
		return invalid("github.fork_policy", "%q: want evaluate-only or label", c.GitHub.ForkPolicy)
	}
	if c.Runner.Provider != "" && c.Runner.Provider != "ec2" {
		return invalid("runner.provider", "%q: want \"\" or \"ec2\"", c.Runner.Provider)
	}
	return validRunner(&c.Runner)
}

var (
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	subnetRE       = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	ssmPrefixRE    = regexp.MustCompile(`^(/[A-Za-z0-9_.-]+)+$`)
)

// validRunner checks [runner].
func validRunner(r *Runner) error {
	if r.Provider != "" && r.Provider != "ec2" {
		return invalid("runner.provider", "%q: want \"\" or \"ec2\"", r.Provider)
	}
	if r.TTLMinutes < 1 || r.TTLMinutes > 7*24*60 {
		return invalid("runner.ttl_minutes", "%d: want 1…10080", r.TTLMinutes)
	}
	if len(r.InstanceTypes) == 0 {
		return invalid("runner.instance_types", "empty: name at least one instance type")
	}
	for _, t := range r.InstanceTypes {
		if !instanceTypeRE.MatchString(t) {
			return invalid("runner.instance_types", "%q is not an instance type (like \"g5.xlarge\")", t)
		}
	}
	for _, s := range r.Subnets {
		if !subnetRE.MatchString(s) {
			return invalid("runner.subnets", "%q is not a subnet ID (subnet-…)", s)
		}
	}
	if !slices.Contains([]string{"on-demand", "spot", "spot-then-on-demand"}, r.Market) {
		return invalid("runner.market", "%q: want on-demand, spot or spot-then-on-demand", r.Market)
	}
	for _, f := range []struct {
		key string
		v   float64
	}{{"runner.max_spot_price", r.MaxSpotPrice}, {"runner.max_usd_per_pr", r.MaxUSDPerPR}, {"runner.max_usd_per_month", r.MaxUSDPerMonth}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return invalid(f.key, "%v: want a non-negative amount of USD", f.v)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(r.USDPerHour)) {
		if v := r.USDPerHour[t]; !instanceTypeRE.MatchString(t) || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			return invalid("runner.usd_per_hour", "%q = %v: want an instance type and a positive amount of USD", t, v)
		}
	}
	if r.RunnerGroupID < 1 {
		return invalid("runner.runner_group_id", "%d: must be at least 1 (1 is the default group)", r.RunnerGroupID)
	}
	for _, f := range []struct {
		key string
		v   int
	}{{"runner.register_timeout_minutes", r.RegisterTimeoutMinutes}, {"runner.idle_timeout_minutes", r.IdleTimeoutMinutes}} {
		if f.v < 1 || f.v > r.TTLMinutes {
			return invalid(f.key, "%d: want 1…ttl_minutes (%d)", f.v, r.TTLMinutes)
		}
	}
	if !ssmPrefixRE.MatchString(r.SSMPrefix) || strings.HasPrefix(strings.ToLower(r.SSMPrefix), "/aws") {
		return invalid("runner.ssm_prefix", "%q: want a parameter path like \"/medcad/runners\" (not under /aws)", r.SSMPrefix)
	}
	if r.VolumeGiB < 8 || r.VolumeGiB > 16384 {
		return invalid("runner.volume_gib", "%d: want 8…16384", r.VolumeGiB)
	}
	if r.MaxConcurrent < 0 {
		return invalid("runner.max_concurrent", "%d: must not be negative", r.MaxConcurrent)
	}
	for _, l := range r.Labels {
		if l == "" || strings.ContainsAny(l, ", \t\n") {
			return invalid("runner.labels", "%q: a label is one word without commas", l)
		}
	}
	return nil
}

// KeyPath is the de-identification key file of a project at root:
// [data] key_file, relative to root unless absolute.
func (c *Config) KeyPath(root string) string {
	if filepath.IsAbs(c.Data.KeyFile) {
		return c.Data.KeyFile
	}
	return filepath.Join(root, filepath.FromSlash(c.Data.KeyFile))
}
