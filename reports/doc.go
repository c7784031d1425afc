// Package reports compares a candidate model with its baseline and applies
// the promotion gates: paired per-case differences with a bootstrap
// confidence interval and a Wilcoxon signed-rank p-value, data, params and
// environment changes, lineage, plots, and renderers for a pull-request
// comment (GitHub Markdown), an artifact (self-contained HTML) and
// machines (JSON).
//
// Written by hand, because no reachable Go library does it: the Wilcoxon
// signed-rank test (exact null distribution for small samples, normal
// approximation with tie correction otherwise; checked against scipy),
// the gate rules, and the escaping of user-controlled text in Markdown.
// Summary statistics and the bootstrap come from stages/metrics, line
// diffs from sergi/go-diff, charts from gonum/plot, HTML escaping from
// html/template.
//
// A report never holds PHI: it shows pseudonymous case IDs, digests,
// dataset names, params and metrics, never DICOM tag values.
package reports
