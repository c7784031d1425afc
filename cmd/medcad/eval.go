package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/medcad/medcad/stages/metrics"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

type evalOptions struct {
	truth, pred       string
	truthDir, predDir string
	tolerances        []float64
	label             int
	perLabel          bool
	csv               bool
	metricsOut        string
}

func newEvalCmd(a *app) *cobra.Command {
	var opts evalOptions
	cmd := &cobra.Command{
		Use:         "eval --truth T.nii.gz --pred P.nii.gz | --truth-dir D --pred-dir D",
		Annotations: algorithm(metrics.Version),
		Short:       "Compare predicted label maps with ground truth (Dice, IoU, HD, HD95, ASSD, MASD, NSD)",
		Long: `Compare a predicted label map with its ground truth, or every case of a
folder of predictions with the folder of ground truths (cases matched by
file name, .nii or .nii.gz).

Metrics (see docs/metrics.md for the exact definitions): Dice and IoU over
voxels; HD, HD95, ASSD and MASD in mm between the mask borders (mask XOR its
6-connected erosion), with exact Euclidean distances and the voxel spacing;
NSD at each --tolerance-mm. A mask is the voxels with --label, or every
nonzero voxel when --label is 0. An empty mask is flagged: both empty give
Dice 1 and distances 0; one empty gives Dice 0 and infinite distances
(printed as inf, null in JSON).

Both volumes must share shape and affine (within 0.001 mm). Folder mode
prints a per-case table and an aggregate (mean, median, standard deviation,
min, max and a 95% bootstrap confidence interval of the mean, fixed seed);
--csv writes the per-case table and the aggregate rows as CSV.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEval(cmd.Context(), a, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.truth, "truth", "", "ground-truth label map `FILE` (NIfTI)")
	f.StringVar(&opts.pred, "pred", "", "predicted label map `FILE` (NIfTI)")
	f.StringVar(&opts.truthDir, "truth-dir", "", "folder `DIR` of ground-truth label maps")
	f.StringVar(&opts.predDir, "pred-dir", "", "folder `DIR` of predictions with the same file names")
	opts.tolerances = []float64{1}
	f.Var(&toleranceList{vals: &opts.tolerances}, "tolerance-mm", "NSD tolerance in `MM` (repeatable)")
	f.IntVar(&opts.label, "label", 0, "label value to evaluate; 0 = every nonzero voxel")
	f.BoolVar(&opts.perLabel, "per-label", false, "also evaluate each label of a multi-label map separately (single pair)")
	f.BoolVar(&opts.csv, "csv", false, "folder mode: CSV output")
	f.StringVar(&opts.metricsOut, "metrics-out", "", "folder mode: also write the mean of each metric as a JSON object to `FILE` (a pipeline stage's MEDCAD_METRICS)")
	return cmd
}

// toleranceList is the repeatable --tolerance-mm flag: the first use
// replaces the default, later uses add.
type toleranceList struct {
	vals *[]float64
	set  bool
}

func (l *toleranceList) String() string {
	if l == nil || l.vals == nil {
		return ""
	}
	s := make([]string, len(*l.vals))
	for i, v := range *l.vals {
		s[i] = metrics.ToleranceKey(v)
	}
	return strings.Join(s, ",")
}

func (l *toleranceList) Set(v string) error {
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", v)
	}
	if !l.set {
		*l.vals, l.set = nil, true
	}
	*l.vals = append(*l.vals, x)
	return nil
}

func (l *toleranceList) Type() string { return "mm" }

func runEval(ctx context.Context, a *app, opts evalOptions) error {
	pair := opts.truth != "" || opts.pred != ""
	dirs := opts.truthDir != "" || opts.predDir != ""
	switch {
	case pair && dirs:
		return usagef("eval: use --truth/--pred or --truth-dir/--pred-dir, not both")
	case pair && (opts.truth == "" || opts.pred == ""):
		return usagef("eval: --truth and --pred go together")
	case dirs && (opts.truthDir == "" || opts.predDir == ""):
		return usagef("eval: --truth-dir and --pred-dir go together")
	case !pair && !dirs:
		return usagef("eval: give --truth and --pred, or --truth-dir and --pred-dir")
	case opts.label < 0 || opts.label > 255:
		return usagef("eval: --label %d: want 0..255", opts.label)
	case opts.csv && a.json:
		return usagef("eval: --csv and --json exclude each other")
	case opts.csv && pair:
		return usagef("eval: --csv is for folder mode")
	case opts.perLabel && dirs:
		return usagef("eval: --per-label is for a single pair")
	}
	for _, tau := range opts.tolerances {
		if !(tau >= 0) || math.IsInf(tau, 0) {
			return usagef("eval: --tolerance-mm %v: want a finite number ≥ 0", tau)
		}
	}
	slices.Sort(opts.tolerances)
	opts.tolerances = slices.Compact(opts.tolerances)
	if pair {
		return evalPair(ctx, a, opts)
	}
	return evalDirs(ctx, a, opts)
}

// pairResult is the single-pair JSON output: the metrics of the evaluated
// label, plus per-label metrics with --per-label.
type pairResult struct {
	metrics.Result
	Labels []metrics.LabelResult `json:"labels,omitempty"`
}

func (p pairResult) MarshalJSON() ([]byte, error) {
	if p.Labels == nil {
		return p.Result.MarshalJSON()
	}
	// Result's keys, then "labels".
	b, err := p.Result.MarshalJSON()
	if err != nil {
		return nil, err
	}
	l, err := json.Marshal(p.Labels)
	if err != nil {
		return nil, err
	}
	return append(append(append(b[:len(b)-1:len(b)-1], `,"labels":`...), l...), '}'), nil
}

func evalPair(ctx context.Context, a *app, opts evalOptions) error {
	p, err := metrics.ReadPair(opts.truth, opts.pred)
	if err != nil {
		return err
	}
	mo := metrics.Options{Label: uint8(opts.label), TolerancesMM: opts.tolerances}
	r, err := p.Evaluate(ctx, mo)
	if err != nil {
		return err
	}
	out := pairResult{Result: r}
	if opts.perLabel {
		if out.Labels, err = metrics.EvaluateLabels(ctx, p.Truth, p.Pred, mo); err != nil {
			return err
		}
	}
	if a.json {
		return a.printJSON(out)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	names := metrics.MetricNames(opts.tolerances)
	row := func(label string, r metrics.Result) {
		if label != "" {
			fmt.Fprintf(tw, "label %s\n", label)
		}
		for _, n := range names {
			v, _ := r.Value(n)
			fmt.Fprintf(tw, "%s\t%s\n", n, metrics.Format(v))
		}
		fmt.Fprintf(tw, "truth_voxels\t%d\npred_voxels\t%d\n", r.TruthVoxels, r.PredVoxels)
		if len(r.Flags) > 0 {
			fmt.Fprintf(tw, "flags\t%s\n", strings.Join(r.Flags, ","))
		}
	}
	row("", r)
	for _, lr := range out.Labels {
		fmt.Fprintln(tw)
		row(strconv.Itoa(int(lr.Label)), lr.Result)
	}
	return tw.Flush()
}

// evalDirs evaluates a folder of predictions (metrics.Dirs) and prints
// the cases and the aggregate.
func evalDirs(ctx context.Context, a *app, opts evalOptions) error {
	dirs, err := metrics.PairDirs(opts.truthDir, opts.predDir)
	if err != nil {
		return err
	}
	if dirs.Unmatched > 0 {
		fmt.Fprintf(a.err, "medcad: note: %d predictions in %s have no ground truth in %s; not evaluated\n", dirs.Unmatched, opts.predDir, opts.truthDir)
	}

	var bar *progressbar.ProgressBar
	if a.progressOn() && !a.json {
		bar = progressbar.NewOptions(len(dirs.Cases), progressbar.OptionSetWriter(a.err),
			progressbar.OptionSetDescription("evaluating"), progressbar.OptionClearOnFinish())
	}
	mo := metrics.Options{Label: uint8(opts.label), TolerancesMM: opts.tolerances}
	rep, err := dirs.Evaluate(ctx, mo, func(c metrics.Case) {
		if c.Result == nil {
			fmt.Fprintf(a.err, "medcad: %s\n", c.Error)
		} else {
			a.log.Debug("evaluated", "case", c.ID, "dice", c.Dice)
		}
		if bar != nil {
			_ = bar.Add(1)
		}
	})
	if err != nil {
		return err
	}
	if opts.metricsOut != "" {
		if err := metrics.WriteMeans(opts.metricsOut, rep.Aggregate); err != nil {
			return err
		}
	}

	switch {
	case a.json:
		var b []byte
		if b, err = rep.Encode(); err == nil {
			_, err = a.out.Write(b)
		}
	case opts.csv:
		err = metrics.WriteCSV(a.out, rep)
	default:
		err = metrics.WriteTable(a.out, rep)
	}
	if err != nil {
		return err
	}
	if failed := rep.Failed(); failed > 0 {
		return fmt.Errorf("%d of %d cases could not be evaluated", failed, len(dirs.Cases))
	}
	return nil
}
