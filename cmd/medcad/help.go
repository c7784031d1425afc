package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// helpText is what a command's help says beyond its flags: a description
// for commands that have none in their constructor, the examples, what
// --json prints, and exit codes where they differ from the README table
// (0 ok, 1 error, 2 usage, 3 check failed, 130 interrupted).
type helpText struct {
	long    string // used when the command sets no Long
	example string
	json    string // what --json prints; "" = --json is not supported
	exit    string // exit codes beyond the usual ones
}

// jsonNone is the output line of commands that print no JSON.
const jsonNone = "--json: not supported; the output is text."

// help holds every command's help text, by command path.
var help = map[string]helpText{
	"medcad": {
		long: `medcad versions DICOM datasets in a content-addressed store, runs the
pipeline of medcad.toml (de-identification, nnU-Net layout, training,
evaluation, surfaces) with caching, compares a candidate model with its
baseline and promotes models through Git. Every command prints data on
stdout and diagnostics on stderr; --json asks for one JSON document where
a command supports it (each command's help says).`,
		example: `  medcad init myproject
  medcad -C myproject data add /incoming/batch1 --name batch1
  medcad -C myproject repro
  medcad demo --keep`,
	},
	"medcad version": {
		long:    "Print medcad's version, the commit it was built from (with \"(modified)\" when the tree was dirty) and the Go version.",
		example: "  medcad version\n  medcad version --json",
		json:    `one object {"version", "commit", "dirty", "go"}.`,
	},
	"medcad init": {
		example: "  medcad init\n  medcad init myproject\n  medcad init myproject --force --json",
		json:    `one object {"git_init", "created", "kept", "written"} (lists of paths).`,
	},
	"medcad config show": {
		long:    "Print the effective configuration of the project: medcad.toml with every default filled in, as TOML.",
		example: "  medcad config show\n  medcad -C myproject config show --json",
		json:    "the configuration as one JSON object.",
	},
	"medcad config check": {
		long: `Validate medcad.toml: syntax, unknown keys, values and the pipeline. Errors
name file, line and key (medcad.toml:12: unknown key "remot" in [project]).`,
		example: "  medcad config check\n  medcad config check --json",
		json:    `{"file": "medcad.toml", "ok": true} when valid; an invalid file is an error on stderr (exit 1).`,
	},
	"medcad demo": {
		example: "  medcad demo\n  medcad demo --keep --cases 2\n  medcad demo --dir /tmp/medcad-demo",
		json:    jsonNone,
	},
	"medcad data add": {
		example: "  medcad data add /incoming/batch1 --name batch1\n  medcad data add data/ct --name ct --label-rules v2\n  medcad data add /scratch/big --name big --link hardlink --json",
		json:    "one object: name, files, bytes, hashed, pointer, manifest, cases and refused cases.",
	},
	"medcad data status": {
		long: `Compare each dataset's folder data/NAME/ (default: every dataset) with its
pointer data/NAME.dataset.toml and list new, modified and missing files;
files the stat index knows unchanged are not read again. With --remote,
also say whether every object of each dataset is on the remote.`,
		example: "  medcad data status\n  medcad data status batch1 --remote\n  medcad data status --json",
		json:    "one array, one object per dataset (name, files, in_cache, clean, status lists, pushed).",
	},
	"medcad data push": {
		long: `Send the objects of the named datasets (default: every dataset pointer in
data/) from the local cache to the remote of medcad.toml [remote]
(MEDCAD_REMOTE overrides its url). Objects already on the remote are not
sent again.`,
		example: "  medcad data push\n  medcad data push batch1 batch2 --jobs 64\n  medcad data push --json",
		json:    "one object: remote, datasets, objects and bytes sent, skipped, complete.",
	},
	"medcad data pull": {
		long: `Fetch the objects of the named datasets (default: every dataset pointer in
data/) from the remote into the local cache, then check them out to
data/NAME/ (see 'medcad data checkout'); --no-checkout only fills the cache.`,
		example: "  medcad data pull\n  medcad data pull batch1 --no-checkout\n  medcad data pull --link hardlink --json",
		json:    "one object: remote, datasets, objects and bytes received, skipped, checked_out.",
	},
	"medcad data checkout": {
		example: "  medcad data checkout\n  medcad data checkout batch1 --force\n  medcad data checkout --link copy --json",
		json:    `one object {"written": N}.`,
	},
	"medcad data verify": {
		example: "  medcad data verify\n  medcad data verify --remote --jobs 8\n  medcad data verify --json",
		json:    "one object: objects, corrupt, repaired, missing_remote.",
		exit:    "3 when corrupt objects are left or objects are missing on the remote.",
	},
	"medcad data diff": {
		long: `List the datasets added, removed and changed between revision REV1
(default HEAD) and REV2 (default: the working tree), with file counts; for
changed datasets whose manifests are cached, the files added, removed and
modified.`,
		example: "  medcad data diff\n  medcad data diff HEAD~1\n  medcad data diff main my-branch --json",
		json:    "one array, one object per changed dataset.",
	},
	"medcad gc": {
		example: "  medcad gc --dry-run\n  medcad gc\n  medcad gc --remote --json",
		json:    "one object: cache (kept, removed, removed_bytes) and remote with --remote.",
	},
	"medcad dicom inspect": {
		example: "  medcad dicom inspect /incoming/case1\n  medcad dicom inspect scans/ --strict\n  medcad dicom inspect scans/ --json",
		json:    "one array, one object per series (the sidecar fields, with error).",
		exit:    "3 when a series cannot be converted (with --strict: also when one is irregular).",
	},
	"medcad dicom convert": {
		example: "  medcad dicom convert /incoming/case1 --out nifti/\n  medcad dicom convert scans/ --out nifti/ --resample --key-file .medcad/project.key\n  medcad dicom convert scans/ --out nifti/ --gzip=false --json",
		json:    "one array, one object per series (the sidecar with image and sidecar paths, or error).",
		exit:    "3 when some series could not be converted.",
	},
	"medcad dicom deid": {
		example: "  medcad dicom deid /incoming/batch1 --out deid/\n  medcad dicom deid scans/ --out deid/ --shift-dates -30\n  medcad dicom deid scans/ --out deid/ --keep-dates --key-file site.key --json",
		json:    "one array, one object per file: in, out, case_id, series_uid, skipped, error.",
	},
	"medcad dicom scan-phi": {
		example: "  medcad dicom scan-phi deid/\n  medcad dicom scan-phi deid/ --json",
		json:    "one array of {file, attributes}, [] when clean.",
		exit:    "3 when any file holds such attributes.",
	},
	"medcad eval": {
		example: "  medcad eval --truth truth.nii.gz --pred pred.nii.gz\n  medcad eval --truth t.nii.gz --pred p.nii.gz --label 1 --per-label --tolerance-mm 1 --tolerance-mm 2\n  medcad eval --truth-dir labelsTs --pred-dir pred --csv\n  medcad eval --truth-dir labelsTs --pred-dir pred --metrics-out metrics.json --json",
		json:    "one object: the metrics of the pair (with labels for --per-label), or in folder mode the cases and the aggregate.",
	},
	"medcad surface": {
		example: "  medcad surface --in mask.nii.gz --out bone.stl\n  medcad surface --in mask.nii.gz --out bone.stl --label 1 --smooth 10\n  medcad surface --in ct.nii.gz --out bone.stl --iso 300 --ascii --json",
		json:    "one object: in, out, vertices, triangles, area_mm2, volume_mm3 (and voxels, voxel_volume_mm3 for a label map).",
	},
	"medcad phantom": {
		example: "  medcad phantom --out phantoms --cases 8\n  medcad phantom --out incoming/batch1 --cases 4 --seed 101 --format dicom --label-rules v1\n  medcad phantom --out big --cases 1 --size full --json",
		json:    "one array, one object per case (id, shape, spacing, bone voxels, noise, confounders).",
	},
	"medcad segment": {
		example: "  medcad segment train --data build/nnunet --out build/model.toml\n  medcad segment predict --model build/model.toml --in build/nnunet/imagesTs --out build/pred",
		json:    jsonNone,
	},
	"medcad segment train": {
		example: "  medcad segment train --data build/nnunet --out build/model.toml\n  medcad segment train --data build/nnunet --out model.toml --params params.toml --seed 7 --json",
		json:    "one object: cases, samples, seconds, train_dice, model, digest.",
	},
	"medcad segment predict": {
		example: "  medcad segment predict --model model.toml --in ct.nii.gz --out mask.nii.gz\n  medcad segment predict --model model.toml --in build/nnunet/imagesTs --out build/pred --json",
		json:    "one array, one object per file: in, out, bone_voxels, error.",
	},
	"medcad segment baseline": {
		example: "  medcad segment baseline --threshold 300 --in ct.nii.gz --out mask.nii.gz\n  medcad segment baseline --threshold 250 --keep-fraction 0.2 --in imagesTs --out pred --json",
		json:    "one array, one object per file: in, out, bone_voxels, error.",
	},
	"medcad env show": {
		long:    "Print each lock file of medcad.toml [env] lock (e.g. uv.lock) with its digest (part of the cache key of env = true stages) and the packages it locks.",
		example: "  medcad env show\n  medcad env show --json",
		json:    "one array, one object per lock file (file, digest, packages).",
	},
	"medcad env check": {
		long: `Compare the packages installed in a Python environment (--python, default
.venv/bin/python, else python3 on PATH) with the lock files of medcad.toml
[env] lock and list every package missing, extra or at another version.`,
		example: "  medcad env check\n  medcad env check --python .venv/bin/python --json",
		json:    `one object {"python": VERSION, "drift": [...]}.`,
		exit:    "3 when the environment differs from the lock.",
	},
	"medcad runs list": {
		long:    "List the run records (refs/medcad/runs/*), oldest first: id, stage, commit, datasets and metrics.",
		example: "  medcad runs list\n  medcad runs list --json",
		json:    "one array of run records, [] when there are none.",
	},
	"medcad runs show": {
		long:    "Print one run record: params, datasets, commit, environment lock, metrics. An unambiguous prefix of its id is enough. The record is printed as JSON with or without --json.",
		example: "  medcad runs show 3f2a9c\n  medcad runs show 3f2a9c --json",
		json:    "one object, the run record (also without --json).",
	},
	"medcad runs diff": {
		long: `Compare two run records side by side: params, datasets (digests), metrics
and the environment lock; rows that differ are marked with *.`,
		example: "  medcad runs diff 3f2a9c 81bd07\n  medcad runs diff 3f2a9c 81bd07 --json",
		json:    `one array of {"section", "key", "a", "b"}.`,
	},
	"medcad runs push": {
		long:    "Push the run records (refs/medcad/runs/*) to a git remote (GITHUB_TOKEN authenticates HTTPS remotes), so that CI and colleagues see them.",
		example: "  medcad runs push\n  medcad runs push --remote upstream",
		json:    jsonNone,
	},
	"medcad runs pull": {
		long:    "Fetch the run records (refs/medcad/runs/*) of a git remote (GITHUB_TOKEN authenticates HTTPS remotes).",
		example: "  medcad runs pull\n  medcad runs pull --remote upstream",
		json:    jsonNone,
	},
	"medcad repro": {
		example: "  medcad repro\n  medcad repro --dry-run\n  medcad repro train --force\n  medcad repro --shard 0/4 --push --jobs 8\n  medcad repro --json",
		json:    "one array of the pipeline's events (stage, case, status, reason); progress stays on stderr.",
	},
	"medcad status": {
		long: `List the stages (and cases) that 'medcad repro' would run, with the reason:
deps, params, command, env lock or medcad's version changed, an upstream
stage is stale, or never run; prints "pipeline is up to date" when none is.
It is 'medcad repro --dry-run' and changes nothing.`,
		example: "  medcad status\n  medcad -C myproject status --json",
		json:    "one array of the events repro would emit (status would-run or up-to-date).",
	},
	"medcad stage ingest": {
		long: `Convert one case of a de-identified dataset into the nnU-Net layout: the
DICOM series under --image becomes <out>/imagesTr/<case>_0000.nii.gz and
the case's label (--label DIR holding label.nii.gz) <out>/labelsTr/<case>.nii.gz.
It is the "ingest" stage (foreach = "case") that 'medcad init' scaffolds
in medcad.toml; its cache key holds the ingest algorithm's version.`,
		example: "  medcad stage ingest --case case001 --image data/batch1/case001/CT --label data/batch1/case001 --out build/cases/case001\n  medcad stage ingest --case c1 --image c1/CT --out build/cases/c1 --resample",
		json:    jsonNone,
	},
	"medcad stage assemble": {
		long: `Assemble the cases written by 'medcad stage ingest' (--cases DIR) into one
nnU-Net v2 raw dataset with dataset.json: a fixed, seeded share of the
labelled cases (--holdout) goes to imagesTs/ and labelsTs/ for evaluation,
the rest to imagesTr/ and labelsTr/. It is the "dataset" stage that
'medcad init' scaffolds in medcad.toml.`,
		example: "  medcad stage assemble --cases build/cases --out build/nnunet\n  medcad stage assemble --cases build/cases --out build/nnunet --name bone --label-rules v2 --holdout 0.2",
		json:    jsonNone,
	},
	"medcad report": {
		example: "  medcad report\n  medcad report --base main --format html --out report.html\n  medcad report --base HEAD~1 --candidate models/bone.model.toml --assets plots --out report.md\n  medcad report --json",
		json:    "the same as --format json: one object.",
	},
	"medcad metrics": {
		long:    "Compare model metrics between revisions; see 'medcad metrics diff'.",
		example: "  medcad metrics diff HEAD~1",
		json:    jsonNone,
	},
	"medcad metrics diff": {
		example: "  medcad metrics diff\n  medcad metrics diff HEAD~1 HEAD --md\n  medcad metrics diff main --json",
		json:    `one object {"base", "candidate", "paired", "metrics": [...]}.`,
	},
	"medcad gate": {
		example: "  medcad gate\n  medcad gate --base HEAD~1\n  medcad gate --base main --candidate models/bone.model.toml --json",
		json:    "one object: the verdict (promote, source, gates).",
		exit:    "3 when the candidate is blocked.",
	},
	"medcad ci pr": {
		long: `Evaluate the pull request of this GitHub Actions run, as described in
'medcad ci --help': repro, report, signed gate verdict, sticky comment,
check run and step outputs. Outside GitHub Actions it is a usage error.`,
		example: "  medcad ci pr\n  medcad ci pr --no-push --report-dir out/ --json",
		json:    "one object: verdict, model, artifact, report and failed gates.",
		exit:    "3 when a gate blocked the candidate.",
	},
	"medcad ci main": {
		long: `Promote the model merged into the default branch (see 'medcad promote'),
in a GitHub Actions run on a push. Outside GitHub Actions it is a usage error.`,
		example: "  medcad ci main\n  medcad ci main --git-remote origin --json",
		json:    "one object: the promotion (alias, version, tag) when one was made.",
		exit:    "3 when the manifest is refused.",
	},
	"medcad promote": {
		example: "  medcad promote\n  medcad promote --no-push\n  medcad promote --git-remote origin --pr 42 --json",
		json:    "one object: the promotion (alias, version, tag) when pushed; --no-push prints text.",
		exit:    "3 when the manifest is refused (forged, not signed, gates not passed).",
	},
}

// applyHelp sets every command's Long, Example and output lines from help.
func applyHelp(c *cobra.Command) {
	if h, ok := help[c.CommandPath()]; ok {
		long := c.Long
		if long == "" {
			long = h.long
		}
		var tail []string
		if h.json != "" {
			j := h.json
			if !strings.HasPrefix(j, "--json:") {
				j = "--json: " + j
			}
			tail = append(tail, j)
		}
		if h.exit != "" {
			tail = append(tail, "Exit codes: 0 ok; "+strings.TrimSuffix(h.exit, ".")+"; 1 other errors; 2 usage errors; 130 interrupted.")
		}
		if len(tail) > 0 {
			long = strings.TrimRight(long, "\n") + "\n\n" + strings.Join(tail, "\n")
		}
		c.Long = long
		if c.Example == "" {
			c.Example = h.example
		}
	}
	for _, sub := range c.Commands() {
		applyHelp(sub)
	}
}
