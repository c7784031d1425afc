package gitops

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
)

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig("medcad.toml", []byte("[project]\nname = \"knee\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Project.Name = "knee"
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", "[project]\nname = \"k\"\nremot = 1\n", `medcad.toml:3: unknown key "remot" in [project]`},
		{"unknown table", "\n[remot]\nurl = \"x\"\n", `medcad.toml:2: unknown key "remot"`},
		{"unknown top-level key", "verbose = true\n", `medcad.toml:1: unknown key "verbose"`},
		{"unknown in array table", "[[stage]]\nname = \"a\"\nrun = \"true\"\nnmae = \"b\"\n", `medcad.toml:4: unknown key "nmae" in [stage]`},
		{"after multiline array", "[env]\nlock = [\n  \"a\",\n  \"b = c\",\n]\nlok = 1\n", `medcad.toml:6: unknown key "lok" in [env]`},
		{"after multiline string", "[project]\nname = \"k\"\n[[stage]]\nname = \"s\"\nrun = \"\"\"\nx = 1\n\"\"\"\nrunn = 2\n", `medcad.toml:8: unknown key "runn" in [stage]`},
		{"quoted key", "[project]\n\"na me\" = 1\n", `medcad.toml:2: unknown key "na me" in [project]`},
		{"wrong type", "[remote]\n\njobs = \"many\"\n", `medcad.toml:3: key "remote.jobs": wrong type: string, want integer`},
		{"wrong type bool", "[remote]\npath_style = 1\n", `medcad.toml:2: key "remote.path_style": wrong type: integer, want boolean`},
		{"bad url", "[remote]\nurl = \"ftp://x\"\n", `medcad.toml:2: key "remote.url": "ftp://x": want file://PATH or s3://BUCKET/PREFIX`},
		{"jobs range", "[remote]\njobs = 0\n", `medcad.toml:2: key "remote.jobs": 0: want 1…1024`},
		{"bad link", "[data]\nlink = \"symlink\"\n", `medcad.toml:2: key "data.link": "symlink": want "copy" or "hardlink"`},
		{"bad gate rule", "[[promote.gate]]\nmetric = \"dice\"\nstat = \"mean\"\nrule = \"nicer\"\n", `medcad.toml:4: key "promote.gate.rule": "nicer": want no-worse, better, at-least or at-most`},
		{"duplicate stage", "[[stage]]\nname = \"a\"\nrun = \"x\"\n[[stage]]\nname = \"a\"\nrun = \"y\"\n", `medcad.toml:2: key "stage.name": stage "a" declared twice`},
		{"bad pass name", "[env]\npass = [\"CUDA-DEVICES\"]\n", `medcad.toml:2: key "env.pass": "CUDA-DEVICES" is not an environment variable name`},
		{"empty pass name", "[env]\npass = [\"\"]\n", `medcad.toml:2: key "env.pass": "" is not an environment variable name`},
		{"pass signing key", "[env]\npass = [\"MEDCAD_SIGNING_KEY\"]\n", `medcad.toml:2: key "env.pass": "MEDCAD_SIGNING_KEY": MEDCAD_ variables are medcad's own`},
		{"pass wrong type", "[env]\npass = \"HF_HOME\"\n", `medcad.toml:2: key "env.pass": wrong type: string, want array`},
		{"bad env_pass name", "[[stage]]\nname = \"a\"\nrun = \"x\"\nenv_pass = [\"1X\"]\n", `medcad.toml:4: key "stage.env_pass": "1X" is not an environment variable name`},
		{"env_pass medcad name", "[[stage]]\nname = \"a\"\nrun = \"x\"\nenv_pass = [\"medcad_remote\"]\n", `medcad.toml:4: key "stage.env_pass": "medcad_remote": MEDCAD_ variables`},
		{"bad usd_per_hour", "[runner]\nusd_per_hour = { \"g5.xlarge\" = 1.2, \"g6.xlarge\" = -1 }\n", `medcad.toml:2: key "runner.usd_per_hour": "g6.xlarge" = -1: want an instance type and a positive amount of USD`},
		{"usd_per_hour type", "[runner.usd_per_hour]\ng5 = 1\n", `medcad.toml:1: key "runner.usd_per_hour": "g5" = 1: want an instance type`},
		{"syntax", "[project\n", `medcad.toml:2: expected`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("medcad.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *ConfigError", err, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n got %q\nwant %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestParseConfigEnvPass(t *testing.T) {
	doc := "[env]\npass = [\"CUDA_VISIBLE_DEVICES\", \"HF_HOME\"]\n[[stage]]\nname = \"a\"\nrun = \"x\"\nenv_pass = [\"WANDB_API_KEY\"]\n"
	cfg, err := ParseConfig("medcad.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"CUDA_VISIBLE_DEVICES", "HF_HOME"}, cfg.Env.Pass); diff != "" {
		t.Errorf("env.pass (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"WANDB_API_KEY"}, cfg.Stages[0].EnvPass); diff != "" {
		t.Errorf("stage.env_pass (-want +got):\n%s", diff)
	}
}

func TestParamsAreFreeForm(t *testing.T) {
	doc := "[params.train]\nlr = 0.1\nlayers = [2, 3]\n[params.train.aug]\nflip = true\n"
	cfg, err := ParseConfig("medcad.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Params["train"]["lr"] != 0.1 {
		t.Errorf("params.train.lr = %v", cfg.Params["train"]["lr"])
	}
}

// FuzzParseConfig checks that any input either fails with a one-line
// located error or yields a config that survives an encode/parse round trip.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("[project]\nname = \"knee\"\n[remote]\nurl = \"s3://b/p\"\njobs = 4\n"))
	f.Add([]byte("[[stage]]\nname = \"a\"\nrun = \"true\"\nparams = [\"p\"]\n[params.p]\nx = 1\n"))
	f.Add([]byte("[[promote.gate]]\nmetric = \"dice\"\nstat = \"mean\"\nrule = \"no-worse\"\ntolerance = 0.01\n"))
	f.Add([]byte("[project\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("medcad.toml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "medcad.toml") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error not located or not one line: %q", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
			t.Fatalf("encode: %v", err)
		}
		again, err := ParseConfig("medcad.toml", buf.Bytes())
		if err != nil {
			t.Fatalf("re-parse of encoded config: %v\n%s", err, buf.String())
		}
		if diff := cmp.Diff(cfg, again); diff != "" {
			t.Fatalf("round trip changed the config:\n%s", diff)
		}
	})
}
