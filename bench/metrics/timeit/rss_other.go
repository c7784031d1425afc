//go:build !unix

package main

import "os"

// peakRSSKB is 0: the peak resident set size is not measured here.
func peakRSSKB(*os.ProcessState) int64 { return 0 }
