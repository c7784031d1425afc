// Package procgroup runs commands medcad does not trust in a process
// group of their own, so that stopping one stops everything it started,
// and finds and signals such groups under a process. The stage runner
// (stages) and the runner agent (action/runner) use it.
package procgroup
