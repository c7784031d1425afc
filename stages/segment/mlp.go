package segment

import (
	"context"
	"math"
	"math/rand/v2"
)

// net is an MLP with the standardization folded into the first layer, for
// fast scoring: h = tanh(A·x + c), p = σ(w·h + b).
type net struct {
	nIn, nHid int
	a         []float32 // nHid × nIn
	c         []float32
	w         []float32
	b         float32
}

func (p *MLP) net() *net {
	nIn, nHid := len(p.Mean), len(p.W1)
	n := &net{nIn: nIn, nHid: nHid, a: make([]float32, nHid*nIn), c: make([]float32, nHid), w: make([]float32, nHid), b: float32(p.B2)}
	for h := range nHid {
		c := p.B1[h]
		for i := range nIn {
			a := p.W1[h][i] / p.Std[i]
			n.a[h*nIn+i] = float32(a)
			c -= a * p.Mean[i]
		}
		n.c[h] = float32(c)
		n.w[h] = float32(p.W2[h])
	}
	return n
}

// score returns the bone probability of each row of fs, per chunk.
func (n *net) score(fs featureSet) [][]float32 {
	out := make([][]float32, len(fs.chunks))
	for ci, c := range fs.chunks {
		out[ci] = n.scoreRows(c.x, len(c.idx))
	}
	return out
}

func (n *net) scoreRows(xs []float32, rows int) []float32 {
	out := make([]float32, rows)
	parallel(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			x := xs[r*n.nIn : (r+1)*n.nIn]
			s := n.b
			for h := range n.nHid {
				acc := n.c[h]
				row := n.a[h*n.nIn : (h+1)*n.nIn]
				for i, v := range x {
					acc += row[i] * v
				}
				s += n.w[h] * tanh32(acc)
			}
			out[r] = 1 / (1 + float32(math.Exp(float64(-s))))
		}
	})
	return out
}

// tanh32 is tanh for float32 scoring by its [7/6] Padé approximant,
// clamped: within 2e-4 of math.Tanh everywhere, and several times faster
// than going through math.Exp.
func tanh32(x float32) float32 {
	if x > 4.97 {
		return 1
	}
	if x < -4.97 {
		return -1
	}
	x2 := x * x
	return x * (135135 + x2*(17325+x2*(378+x2))) / (135135 + x2*(62370+x2*(3150+x2*28)))
}

// samples are training rows: features x (rows of nIn) and 0/1 targets y.
type samples struct {
	x   []float32
	y   []uint8
	nIn int
}

// fit says how to train: params, seed and a per-epoch callback.
type fit struct {
	params   Params
	seed     uint64
	progress func(epoch int)
}

// trainMLP fits an MLP to the standardized samples by minibatch Adam on
// the cross-entropy; deterministic for a seed.
func trainMLP(ctx context.Context, s samples, f fit) (MLP, error) {
	x, y, nIn, p, seed, progress := s.x, s.y, s.nIn, f.params, f.seed, f.progress
	rows := len(y)
	r := rand.New(rand.NewPCG(seed, 0x6d6c70))
	m := MLP{Mean: make([]float64, nIn), Std: make([]float64, nIn)}
	for i := range nIn {
		var s, s2 float64
		for n := range rows {
			v := float64(x[n*nIn+i])
			s += v
			s2 += v * v
		}
		mean := s / float64(rows)
		m.Mean[i] = mean
		m.Std[i] = math.Sqrt(max(s2/float64(rows)-mean*mean, 0))
		if m.Std[i] < 1e-6 {
			m.Std[i] = 1
		}
	}
	nHid := p.Hidden
	w1 := make([]float64, nHid*nIn)
	for i := range w1 {
		w1[i] = r.NormFloat64() / math.Sqrt(float64(nIn))
	}
	b1 := make([]float64, nHid)
	w2 := make([]float64, nHid)
	for i := range w2 {
		w2[i] = r.NormFloat64() / math.Sqrt(float64(nHid))
	}
	var b2 float64
	params := [][]float64{w1, b1, w2}
	nParam := len(w1) + len(b1) + len(w2) + 1
	grad := make([]float64, nParam)
	mom := make([]float64, nParam)
	vel := make([]float64, nParam)
	z := make([]float64, nIn)
	h := make([]float64, nHid)
	order := make([]int, rows)
	for i := range order {
		order[i] = i
	}
	const beta1, beta2, eps = 0.9, 0.999, 1e-8
	step := 0
	for epoch := range p.Epochs {
		if err := ctx.Err(); err != nil {
			return MLP{}, err
		}
		r.Shuffle(rows, func(i, j int) { order[i], order[j] = order[j], order[i] })
		lr := p.LearningRate * (0.5 + 0.5*math.Cos(math.Pi*float64(epoch)/float64(p.Epochs)))
		for start := 0; start < rows; start += p.BatchSize {
			end := min(start+p.BatchSize, rows)
			clear(grad)
			for _, n := range order[start:end] {
				for i := range nIn {
					z[i] = (float64(x[n*nIn+i]) - m.Mean[i]) / m.Std[i]
				}
				s := b2
				for k := range nHid {
					acc := b1[k]
					for i := range nIn {
						acc += w1[k*nIn+i] * z[i]
					}
					h[k] = math.Tanh(acc)
					s += w2[k] * h[k]
				}
				prob := 1 / (1 + math.Exp(-s))
				d := prob - float64(y[n]) // dLoss/ds
				off := len(w1) + len(b1)
				for k := range nHid {
					grad[off+k] += d * h[k]
					dh := d * w2[k] * (1 - h[k]*h[k])
					grad[len(w1)+k] += dh
					for i := range nIn {
						grad[k*nIn+i] += dh * z[i]
					}
				}
				grad[nParam-1] += d
			}
			inv := 1 / float64(end-start)
			step++
			c1 := 1 - math.Pow(beta1, float64(step))
			c2 := 1 - math.Pow(beta2, float64(step))
			pi := 0
			update := func(w *float64, l2 float64) {
				g := grad[pi]*inv + l2*(*w)
				mom[pi] = beta1*mom[pi] + (1-beta1)*g
				vel[pi] = beta2*vel[pi] + (1-beta2)*g*g
				*w -= lr * (mom[pi] / c1) / (math.Sqrt(vel[pi]/c2) + eps)
				pi++
			}
			for li, layer := range params {
				l2 := p.L2
				if li == 1 {
					l2 = 0
				}
				for i := range layer {
					update(&layer[i], l2)
				}
			}
			update(&b2, 0)
		}
		if progress != nil {
			progress(epoch + 1)
		}
	}
	m.W1 = make([][]float64, nHid)
	for k := range nHid {
		m.W1[k] = append([]float64(nil), w1[k*nIn:(k+1)*nIn]...)
	}
	m.B1, m.W2, m.B2 = b1, w2, b2
	return m, nil
}
