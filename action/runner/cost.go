package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
)

// onDemandUSD are EC2's on-demand list prices for Linux in us-east-1, USD
// an hour, for the GPU types a training job uses, as written into this
// table on ListPriceDate; nothing fetches them. Other regions differ by a
// few per cent and AWS changes prices: [runner] usd_per_hour overrides
// them. A type in neither has no price, so a budget cannot be enforced
// for it and start says so.
var onDemandUSD = map[string]float64{
	"g4dn.xlarge": 0.526, "g4dn.2xlarge": 0.752, "g4dn.4xlarge": 1.204, "g4dn.8xlarge": 2.176, "g4dn.12xlarge": 3.912, "g4dn.16xlarge": 4.352,
	"g5.xlarge": 1.006, "g5.2xlarge": 1.212, "g5.4xlarge": 1.624, "g5.8xlarge": 2.448, "g5.12xlarge": 5.672, "g5.16xlarge": 4.096, "g5.24xlarge": 8.144, "g5.48xlarge": 16.288,
	"g6.xlarge": 0.8048, "g6.2xlarge": 0.9776, "g6.4xlarge": 1.3232, "g6.8xlarge": 2.0144, "g6.12xlarge": 4.6016,
	"g6e.xlarge": 1.861, "g6e.2xlarge": 2.24208, "g6e.12xlarge": 10.49264,
	"p3.2xlarge": 3.06, "p3.8xlarge": 12.24, "p3.16xlarge": 24.48,
	"p4d.24xlarge": 32.7726, "p5.48xlarge": 98.32,
}

// ListPriceDate is when the built-in on-demand prices were written down.
const ListPriceDate = "2026-12-02"

// Where a cost's hourly price came from.
const (
	PriceSpotHistory = "spot price history"                                // DescribeSpotPriceHistory, the instance's AZ
	PriceConfig      = "[runner] usd_per_hour"                             // the project's override
	PriceList        = "built-in us-east-1 list price of " + ListPriceDate // onDemandUSD
)

// OnDemandPrice is the on-demand list price of an instance type, USD an
// hour, from the built-in table; false when unknown.
func OnDemandPrice(instanceType string) (float64, bool) {
	p, ok := onDemandUSD[instanceType]
	return p, ok
}

// onDemandPrice is the on-demand price of a type, the project's override
// first, and its source.
func onDemandPrice(cfg gitops.Runner, typ string) (float64, string, bool) {
	if p, ok := cfg.USDPerHour[typ]; ok {
		return p, PriceConfig, true
	}
	p, ok := OnDemandPrice(typ)
	return p, PriceList, ok
}

// Cost is what one instance cost a run.
type Cost struct {
	Repository  string    `json:"repository"`
	Run         int64     `json:"run"`
	Attempt     int       `json:"attempt"`
	PR          int       `json:"pr"`
	Instance    string    `json:"instance"`
	Type        string    `json:"instance_type"`
	Market      string    `json:"market"`
	USDPerHour  float64   `json:"usd_per_hour"`
	PriceSource string    `json:"price_source"` // PriceSpotHistory, PriceConfig or PriceList
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Minutes     float64   `json:"minutes"`
	USD         float64   `json:"usd"`
	Interrupted string    `json:"interrupted,omitempty"` // the spot notice, if one came
	Checkpoint  string    `json:"checkpoint,omitempty"`  // stored after the notice
	Resumed     string    `json:"resumed,omitempty"`     // the checkpoint it started from
}

// priced fills Minutes and USD from Start, End and USDPerHour. EC2 bills
// Linux instances by the second with a one-minute minimum.
func (c *Cost) priced() {
	m := c.End.Sub(c.Start).Minutes()
	c.Minutes = math.Round(math.Max(m, 1)*10) / 10
	c.USD = math.Round(c.USDPerHour*math.Max(m, 1)/60*10000) / 10000
}

// CostLine is the Markdown line a pull request's report shows for costs
// (one or more instances of a run).
func CostLine(costs []Cost) string {
	if len(costs) == 0 {
		return ""
	}
	var total float64
	var parts []string
	for _, c := range costs {
		total += c.USD
		p := fmt.Sprintf("%s %s %.0f min at $%.4f/h", c.Market, c.Type, c.Minutes, c.USDPerHour)
		var notes []string
		if c.Resumed != "" {
			notes = append(notes, "resumed from the checkpoint of "+shortCheckpoint(c.Resumed))
		}
		if c.Interrupted != "" {
			n := "interrupted: " + noticeText(c.Interrupted)
			if c.Checkpoint != "" {
				n += "; checkpoint of " + shortCheckpoint(c.Checkpoint) + " stored"
			} else {
				n += "; no checkpoint stored"
			}
			notes = append(notes, n)
		}
		if len(notes) > 0 {
			p += " (" + strings.Join(notes, "; ") + ")"
		}
		parts = append(parts, p)
	}
	return fmt.Sprintf("**GPU cost:** $%.2f (%s)", total, strings.Join(parts, "; "))
}

// noticeText is an interruption tag for people: "spot {"action":
// "terminate", "time": T}" becomes "spot terminate notice for T"; other
// text comes back unchanged.
func noticeText(tag string) string {
	kind, body, _ := strings.Cut(tag, " ")
	var n struct {
		Action     string `json:"action"`
		Time       string `json:"time"`
		NoticeTime string `json:"noticeTime"` // rebalance recommendations
	}
	if (kind != "spot" && kind != "rebalance") || json.Unmarshal([]byte(body), &n) != nil {
		return tag
	}
	switch {
	case n.Action != "" && n.Time != "":
		return fmt.Sprintf("%s %s notice for %s", kind, n.Action, n.Time)
	case n.NoticeTime != "":
		return fmt.Sprintf("%s recommendation at %s", kind, n.NoticeTime)
	}
	return tag
}

// shortCheckpoint is a checkpoint tag ("attempt N sha256:…") with its
// digest shortened, for the pull request's comment.
func shortCheckpoint(tag string) string {
	f := strings.Fields(tag)
	for i := range f {
		f[i] = cas.ShortText(f[i])
	}
	return strings.Join(f, " ")
}

// Ledger keeps the recorded costs, by month.
type Ledger interface {
	Record(ctx context.Context, c Cost) error
	// Costs are the costs recorded in the month of t (UTC).
	Costs(ctx context.Context, t time.Time) ([]Cost, error)
}

// StoreLedger keeps costs as small JSON objects in the project's store
// remote, one per instance, under runner/costs/<yyyy-mm>/: written once,
// never replaced, readable by every later run.
type StoreLedger struct{ Backend cas.Backend }

const maxCostBytes = 4 << 10

func costPrefix(t time.Time) string { return "runner/costs/" + t.UTC().Format("2006-01") + "/" }

// Record stores c; recording the same instance twice keeps the first.
func (l StoreLedger) Record(ctx context.Context, c Cost) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	key := costPrefix(c.Start) + strings.ReplaceAll(c.Repository, "/", "_") + "/" + c.Instance + ".json"
	err = l.Backend.Put(ctx, key, bytes.NewReader(data), int64(len(data)), sha256.Sum256(data))
	if err != nil && !errors.Is(err, cas.ErrExists) {
		return fmt.Errorf("record cost in %s: %w", l.Backend, err)
	}
	return nil
}

// Costs reads the month's records; one that does not parse is an error
// naming it.
func (l StoreLedger) Costs(ctx context.Context, t time.Time) ([]Cost, error) {
	var keys []string
	err := l.Backend.List(ctx, costPrefix(t), func(key string, size int64) error {
		if size > maxCostBytes {
			return fmt.Errorf("cost record %s: %d bytes, more than %d", key, size, maxCostBytes)
		}
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("costs in %s: %w", l.Backend, err)
	}
	var out []Cost
	for _, k := range keys {
		rc, err := l.Backend.Get(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("cost record %s: %w", k, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, maxCostBytes+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("cost record %s: %w", k, err)
		}
		var c Cost
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("cost record %s: %w", k, err)
		}
		out = append(out, c)
	}
	return out, nil
}
