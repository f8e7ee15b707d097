package testutil

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Paired is a throughput comparison of a candidate against a baseline
// measured in alternating windows of one run (Pairs).
type Paired struct {
	Base, Cand, Ratios []float64
	// BaseCPU and CandCPU are the operations per second of this
	// process's CPU time (user and system) over all windows of each
	// (0 where it cannot be read): what each operation costs in the
	// process, whatever share of the machine the others leave it.
	BaseCPU, CandCPU float64
	// LoadBefore and LoadAfter are /proc/loadavg's 1, 5 and 15 minute
	// averages around the measurement ("" where it cannot be read).
	LoadBefore, LoadAfter string
}

// Pairs measures base and cand (each returns a rate for one window) in n
// pairs after one warm-up pair that is thrown away, in ABBA order (base
// first in even pairs, cand first in odd ones) so that a load that rises
// or falls during the run weighs on both alike. On a shared machine one
// window can stall: the median of the pairs' ratios is the figure, and
// the interquartile range of the ratios says how far to trust it.
//
// Beside the wall-clock rates it counts the process's CPU time in each
// window: operations per CPU second compare what an operation costs, which
// other processes' load disturbs far less than the share of the machine
// they leave (parts outside the process, such as redis-server, are not
// counted; they do the same work for both).
func Pairs(n int, base, cand func() float64) Paired {
	out := Paired{LoadBefore: LoadAvg()}
	base()
	cand()
	var ops, cpu [2]float64
	cpuOK := true
	measure := func(which int, f func() float64) float64 {
		c0, ok0 := processCPU()
		t0 := time.Now()
		r := f()
		wall := time.Since(t0)
		c1, ok1 := processCPU()
		cpuOK = cpuOK && ok0 && ok1
		ops[which] += r * wall.Seconds()
		cpu[which] += (c1 - c0).Seconds()
		return r
	}
	for i := range n {
		var b, c float64
		if i%2 == 0 {
			b = measure(0, base)
			c = measure(1, cand)
		} else {
			c = measure(1, cand)
			b = measure(0, base)
		}
		out.Base, out.Cand, out.Ratios = append(out.Base, b), append(out.Cand, c), append(out.Ratios, c/b)
	}
	if cpuOK && cpu[0] > 0 && cpu[1] > 0 {
		out.BaseCPU, out.CandCPU = ops[0]/cpu[0], ops[1]/cpu[1]
	}
	out.LoadAfter = LoadAvg()
	return out
}

// CPURatio is the candidate's operations per CPU second over the
// baseline's (0 when unknown).
func (p Paired) CPURatio() float64 {
	if p.BaseCPU == 0 {
		return 0
	}
	return p.CandCPU / p.BaseCPU
}

// Median of the ratios.
func (p Paired) Median() float64 { return Median(p.Ratios) }

// Print writes the pairs, the medians and the ratios' interquartile range
// as a table, columns named base and cand, and the load average.
func (p Paired) Print(w io.Writer, base, cand, target string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "pair\t%s\t%s\tratio\t\n", base, cand)
	for i := range p.Ratios {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f\t\n", i+1, p.Base[i], p.Cand[i], p.Ratios[i])
	}
	q1, q3 := Quantile(p.Ratios, 0.25), Quantile(p.Ratios, 0.75)
	fmt.Fprintf(tw, "median\t%.0f\t%.0f\t%.2f (%s; quartiles %.2f-%.2f)\t\n", Median(p.Base), Median(p.Cand), p.Median(), target, q1, q3)
	if p.BaseCPU > 0 {
		fmt.Fprintf(tw, "per CPU s\t%.0f\t%.0f\t%.2f (this process's CPU time)\t\n", p.BaseCPU, p.CandCPU, p.CPURatio())
	}
	tw.Flush()
	fmt.Fprintf(w, "load average before %s, after %s\n", p.LoadBefore, p.LoadAfter)
}

// Median of v (the upper one of an even count).
func Median(v []float64) float64 { return Quantile(v, 0.5) }

// Quantile q of v (nearest rank), 0 for none.
func Quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// LoadAvg is the 1, 5 and 15 minute load average of /proc/loadavg.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
