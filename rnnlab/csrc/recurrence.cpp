// Fused CPU kernels for the hand-written BPTT of rnnlab/bptt.py (Python side: rnnlab/native.py).
//
// The Python loop of bptt.py issues about ten small tensor operations per step (each a dispatch,
// an allocation and a pass over memory) around the one GEMM that matters. Here a step is that GEMM,
// formed by the kernel itself (RowGemm: W_hh packed once, accumulators in registers), and ONE pass
// over the gate pre-activations that applies the whole cell's elementwise maths with SIMD vectors
// (at::vec). Each thread owns rows of the batch for the whole walk (Steps): rows never depend on
// other rows, so a layer's forward or backward is one parallel region, not one per step.
//
// Layout (time-major, as bptt.py): xw (T, B, G*H) = W_ih x_t + b_ih, gates in torch's order;
// w_hh (G*H, H); states (B, H); mask (T, B) of 0/1 (1 at real steps: elsewhere the state is
// carried and the output is 0). hs / cs (T+1, B, H): every state, hs[0] = h_0.
//
//   lstm      a = xw_t + W_hh h + b;  i,f,o = sigmoid(a_i + p_i c_{t-1}, a_f + p_f c_{t-1}, a_o + p_o c_t),
//             g = tanh(a_g), c_t = f c_{t-1} + i g, h_t = o tanh(c_t)   (p = peepholes, or none)
//   gru       r, z = sigmoid(xw_r + hw_r, xw_z + hw_z), n = tanh(xw_n + r hw_n), h_t = n + z (h_{t-1} - n)
//   rnn       h_t = tanh(xw_t + hw_t) or relu(...)
//
// Each backward walks t = T-1 ... 0 once and returns dL/d(pre-activations) for every step; the
// weight gradients are single GEMMs over all steps, formed by the caller.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

using at::Tensor;

namespace {

template <typename T>
using Vec = at::vec::Vectorized<T>;

// sigmoid(x) = 1 / (1 + e^-x), e^x from ATen's faster exp (exp_u20: within 20 ulp in float32, as
// ATen's own softmax kernels use it; float64 keeps the exact exp).
template <typename T>
inline Vec<T> sigmoid(const Vec<T>& x) {
  const Vec<T> one(1);
  return one / (one + x.neg().exp_u20());
}

// tanh(x) = 2 sigmoid(2x) - 1: one exp where Sleef's tanh costs more (absolute error ~1e-7 in float32).
template <typename T>
inline Vec<T> tanh(const Vec<T>& x) {
  const Vec<T> two(2), one(1);
  return two * sigmoid(two * x) - one;
}

// f(j, n) over [0, H) in SIMD widths (n = lanes, the last call may be shorter).
template <typename T, typename F>
inline void lanes(int64_t H, const F& f) {
  constexpr int64_t V = Vec<T>::size();
  int64_t j = 0;
  for (; j + V <= H; j += V) f(j, V);
  if (j < H) f(j, H - j);
}

template <typename T>
inline Vec<T> load(const T* p, int64_t n) {
  return Vec<T>::loadu(p, n);
}

// Large buffers (a layer's gates and states for all steps, tens of MB) come from a small pool:
// fresh memory from the system is mapped page by page on first touch, which cost more than the
// cell maths itself (measured: 70 of 100 ms of an LSTM layer's forward at B 64, T 128, H 512).
// A buffer returns to the pool when its last tensor dies (the saved tensors, after backward).
class Pool {
 public:
  static Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
    int64_t numel = 1;
    for (int64_t s : sizes) numel *= s;
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(numel, 1)) * options.dtype().itemsize();
    if (bytes < kSmallest) return at::empty(sizes, options);
    void* data = take(bytes);
    return at::from_blob(data, sizes, [bytes](void* p) { give(p, bytes); }, options);
  }

 private:
  static constexpr size_t kSmallest = size_t(1) << 20;  // below 1 MB the system allocator reuses memory itself
  static constexpr size_t kCap = size_t(1) << 31;       // at most 2 GB kept for reuse
  static std::mutex& lock() {
    static std::mutex m;
    return m;
  }
  static std::multimap<size_t, void*>& free_blocks() {
    static auto* blocks = new std::multimap<size_t, void*>();  // never destroyed: deleters may run at exit
    return *blocks;
  }
  static size_t& kept() {
    static size_t bytes = 0;
    return bytes;
  }
  static void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> guard(lock());
      auto it = free_blocks().find(bytes);
      if (it != free_blocks().end()) {
        void* p = it->second;
        free_blocks().erase(it);
        kept() -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    TORCH_CHECK(p != nullptr, "rnnlab native: out of memory allocating ", bytes, " bytes");
    return p;
  }
  static void give(void* p, size_t bytes) {
    std::lock_guard<std::mutex> guard(lock());
    if (kept() + bytes > kCap) {
      std::free(p);
      return;
    }
    free_blocks().emplace(bytes, p);
    kept() += bytes;
  }
};

void check(const Tensor& xw, const Tensor& h0, const Tensor& w_hh, int64_t gates) {
  TORCH_CHECK(xw.dim() == 3 && h0.dim() == 2 && w_hh.dim() == 2, "rnnlab native: bad ranks");
  TORCH_CHECK(xw.is_contiguous() && h0.is_contiguous() && w_hh.is_contiguous(), "rnnlab native: needs contiguous tensors");
  TORCH_CHECK(xw.size(2) == gates * h0.size(1) && w_hh.size(0) == gates * h0.size(1) && w_hh.size(1) == h0.size(1),
              "rnnlab native: sizes disagree");
}

// The one micro-kernel of the kernels' matrix products (a step's, the weight gradients'): for k in
// [0, K), acc[m][v] += x[m x_m + k x_k] * w[k w_k + v V], M rows x NR vectors of accumulators held
// in registers, each x broadcast, each row of w loaded whole (Full) or as its first count[v] lanes.
template <bool Full, typename T, int64_t M, int64_t NR>
inline void accumulate(Vec<T> (&acc)[M][NR], int64_t K, const T* x, int64_t x_m, int64_t x_k, const T* w, int64_t w_k,
                       const int64_t* count) {
  constexpr int64_t V = Vec<T>::size();
  for (int64_t k = 0; k < K; ++k) {
    Vec<T> wv[NR];
    for (int64_t v = 0; v < NR; ++v) {
      if constexpr (Full) {
        wv[v] = Vec<T>::loadu(w + k * w_k + v * V);
      } else {
        wv[v] = count[v] > 0 ? load(w + k * w_k + v * V, count[v]) : Vec<T>(0);
      }
    }
    for (int64_t m = 0; m < M; ++m) {
      const Vec<T> xb(x[m * x_m + k * x_k]);
      for (int64_t v = 0; v < NR; ++v) acc[m][v] = at::vec::fmadd(xb, wv[v], acc[m][v]);
    }
  }
}

// A step's product y = x w^T (+ bias) (+ add) for a range of rows, with w
// packed once into panels of P = NR vectors of output columns (each panel K x P contiguous, zero
// past N), and MR rows x NR vectors of accumulators held in registers through the whole sum over K.
// It lets each thread own rows of the batch for a whole sequence (``Steps``): no library call, no
// thread hand-over per step, the weights kept in each core's cache.
template <typename T>
class RowGemm {
 public:
  static constexpr int64_t V = Vec<T>::size();
  static constexpr int64_t NR = 2, P = NR * V;
#if defined(CPU_CAPABILITY_AVX512)
  static constexpr int64_t MR = 8;  // 16 accumulators of the 32 vector registers
#else
  static constexpr int64_t MR = 4;  // 8 of 16
#endif

  explicit RowGemm(const Tensor& w) : N_(w.size(0)), K_(w.size(1)), panels_((w.size(0) + P - 1) / P) {
    packed_ = at::zeros({panels_, K_, P}, w.options());
    const Tensor wc = w.contiguous();
    const T* src = wc.const_data_ptr<T>();
    T* dst = packed_.data_ptr<T>();
    for (int64_t n = 0; n < N_; ++n) {
      T* col = dst + (n / P) * K_ * P + n % P;
      for (int64_t k = 0; k < K_; ++k) col[k * P] = src[n * K_ + k];
    }
  }

  // rows [lo, hi) of x (ld K), add (ld N, or null), y (ld N); bias (N) or null
  void operator()(const T* x, const T* add, const T* bias, T* y, int64_t lo, int64_t hi) const {
    const T* panels = packed_.const_data_ptr<T>();
    for (int64_t p = 0; p < panels_; ++p) {  // a panel stays in L1 while every row block passes over it
      const int64_t n0 = p * P, cols = std::min(P, N_ - n0);
      const T* panel = panels + p * K_ * P;
      int64_t r = lo;
      for (; r + MR <= hi; r += MR) block<MR>(x, add, bias, y, r, n0, cols, panel);
      switch (hi - r) {
        case 0: break;
        case 1: block<1>(x, add, bias, y, r, n0, cols, panel); break;
        case 2: block<2>(x, add, bias, y, r, n0, cols, panel); break;
        case 3: block<3>(x, add, bias, y, r, n0, cols, panel); break;
#if defined(CPU_CAPABILITY_AVX512)
        case 4: block<4>(x, add, bias, y, r, n0, cols, panel); break;
        case 5: block<5>(x, add, bias, y, r, n0, cols, panel); break;
        case 6: block<6>(x, add, bias, y, r, n0, cols, panel); break;
        case 7: block<7>(x, add, bias, y, r, n0, cols, panel); break;
#endif
        default: TORCH_CHECK(false, "rnnlab native: row block");
      }
    }
  }

 private:
  template <int64_t M>
  void block(const T* x, const T* add, const T* bias, T* y, int64_t r, int64_t n0, int64_t cols, const T* panel) const {
    Vec<T> acc[M][NR];
    int64_t count[NR];  // how many of each vector's columns exist (the last panel may end early)
    for (int64_t v = 0; v < NR; ++v) count[v] = std::clamp<int64_t>(cols - v * V, 0, V);
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t v = 0; v < NR; ++v) {
        Vec<T> a(0);
        if (count[v] > 0) {
          const int64_t at_ = (r + m) * N_ + n0 + v * V;
          if (add != nullptr) a = load(add + at_, count[v]);
          if (bias != nullptr) a = a + load(bias + n0 + v * V, count[v]);
        }
        acc[m][v] = a;
      }
    }
    accumulate<true>(acc, K_, x + r * K_, K_, 1, panel, P, count);  // the panel is zero past N: whole rows
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t v = 0; v < NR; ++v) {
        if (count[v] > 0) acc[m][v].store(y + (r + m) * N_ + n0 + v * V, count[v]);
      }
    }
  }

  int64_t N_, K_, panels_;
  Tensor packed_;  // (panels, K, P)
};

// A layer's walk over its steps: each thread owns rows of the batch for the whole sequence and forms
// their step products itself (RowGemm), then the cell pass over the same rows; one parallel region
// for the whole walk, no hand-over between threads per step (rows never depend on other rows). On
// this 2-core CPU an LSTM layer's walks (gate passes included) reached 190-430 GFLOP/s this way, at
// B 16-128 and H 128-1024, where one library call per step for all rows reached 75-400 (oneDNN, its
// weights prepacked; the most at the largest sizes) and 85-180 (ATen's BLAS). w (N, K) is the same
// at every step.
template <typename T>
class Steps {
 public:
  Steps(const Tensor& w, int64_t B) : gemm_(w), N_(w.size(0)), K_(w.size(1)), B_(B) {}

  // for t = 0 ... steps-1: a = x3[t] w^T (+ bias) (+ add3[t]) (B, N), then cell(t, b, a + b N) for
  // every row b. x3 (>= steps, B, K), add3 (steps, B, N).
  template <typename Cell>
  void forward(int64_t steps, const Tensor& x3, const std::optional<Tensor>& add3, const std::optional<Tensor>& bias,
               const Cell& cell) const {
    Tensor pre = at::empty({B_, N_}, x3.options());
    T* a = pre.data_ptr<T>();
    const T* x = x3.const_data_ptr<T>();
    const T* add = add3.has_value() ? add3->const_data_ptr<T>() : nullptr;
    const Tensor bias_c = bias.has_value() ? bias->contiguous() : Tensor();
    const T* bias_ = bias.has_value() ? bias_c.const_data_ptr<T>() : nullptr;
    at::parallel_for(0, B_, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = 0; t < steps; ++t) {
        gemm_(x + t * B_ * K_, add == nullptr ? nullptr : add + t * B_ * N_, bias_, a, lo, hi);
        for (int64_t b = lo; b < hi; ++b) cell(t, b, a + b * N_);
      }
    });
  }

  // for t = steps-1 ... 0: cell(t, b, dh + b N, dp + b N) for every row b, given dL/dh_t (dh) and
  // writing the part of dL/dh_{t-1} that does not pass through the product (dp), then
  // dh = dp + x3[t] w^T. Here w is W_hh^T (H, G), x3 (steps, B, G) what the product reads
  // (dL/d(pre-activation)); d_h (B, H): dL/dh_T in, dL/dh_0 out.
  template <typename Cell>
  void backward(int64_t steps, const Tensor& x3, Tensor& d_h, const Cell& cell) const {
    Tensor d_prev = at::empty_like(d_h);
    T *dp = d_prev.data_ptr<T>(), *dh = d_h.data_ptr<T>();
    const T* x = x3.const_data_ptr<T>();
    at::parallel_for(0, B_, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = steps - 1; t >= 0; --t) {
        for (int64_t b = lo; b < hi; ++b) cell(t, b, dh + b * N_, dp + b * N_);
        gemm_(x + t * B_ * K_, dp, nullptr, dh, lo, hi);
      }
    });
  }

 private:
  RowGemm<T> gemm_;
  int64_t N_, K_, B_;
};

// ------------------------------------------------------------------------------------------ LSTM

template <typename T>
void lstm_forward_impl(const Tensor& xw, const Tensor& w_hh, const std::optional<Tensor>& b_hh,
                       const std::optional<Tensor>& peep, const std::optional<Tensor>& mask, Tensor& hs,
                       Tensor& cs, Tensor& gates, Tensor& tanh_c, Tensor& out) {
  const int64_t steps = xw.size(0), B = xw.size(1), H = hs.size(2);
  const T* pi = peep.has_value() ? peep->const_data_ptr<T>() : nullptr;  // (3, H): p_i, p_f, p_o
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  T *hs_ = hs.data_ptr<T>(), *cs_ = cs.data_ptr<T>(), *gates_ = gates.data_ptr<T>();
  T *tanh_c_ = tanh_c.data_ptr<T>(), *out_ = out.data_ptr<T>();
  // a (4H) = xw_t + W_hh h_{t-1} + b_hh for row b of step t
  Steps<T>(w_hh, B).forward(steps, hs, xw, b_hh, [&](int64_t t, int64_t b, const T* a) {
    const int64_t r = (t * B + b) * H;  // row b of step t in (T, B, H); of step t + 1 in hs, cs: r + B H
    const T *c_prev = cs_ + r, *h_prev = hs_ + r;
    T *c_new = cs_ + r + B * H, *h_new = hs_ + r + B * H, *o_t = out_ + r, *tc_t = tanh_c_ + r;
    T* g_t = gates_ + 4 * r;
    if (m != nullptr && m[t * B + b] == T(0)) {  // padding: carry the state, output 0
      std::copy(h_prev, h_prev + H, h_new);
      std::copy(c_prev, c_prev + H, c_new);
      std::fill(o_t, o_t + H, T(0));
      return;
    }
    lanes<T>(H, [&](int64_t j, int64_t n) {
      const Vec<T> cp = load(c_prev + j, n);
      Vec<T> ai = load(a + j, n), af = load(a + H + j, n), ao = load(a + 3 * H + j, n);
      const Vec<T> ag = load(a + 2 * H + j, n);
      if (pi != nullptr) {
        ai = ai + load(pi + j, n) * cp;
        af = af + load(pi + H + j, n) * cp;
      }
      const Vec<T> i = sigmoid(ai), f = sigmoid(af), g = tanh(ag);
      const Vec<T> c = f * cp + i * g;
      if (pi != nullptr) ao = ao + load(pi + 2 * H + j, n) * c;
      const Vec<T> o = sigmoid(ao), tc = tanh(c), h = o * tc;
      T* gg = g_t + j;
      i.store(gg, n);
      f.store(gg + H, n);
      g.store(gg + 2 * H, n);
      o.store(gg + 3 * H, n);
      c.store(c_new + j, n);
      tc.store(tc_t + j, n);
      h.store(h_new + j, n);
      h.store(o_t + j, n);
    });
  });
}

// -> (out (T, B, H), hs (T+1, B, H), cs (T+1, B, H), gates (T, B, 4H) = i, f, g, o, tanh_c (T, B, H))
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_forward(const Tensor& xw, const Tensor& h0, const Tensor& c0,
                                                               const Tensor& w_hh, const std::optional<Tensor>& b_hh,
                                                               const std::optional<Tensor>& peep,
                                                               const std::optional<Tensor>& mask) {
  check(xw, h0, w_hh, 4);
  const int64_t steps = xw.size(0), B = xw.size(1), H = h0.size(1);
  Tensor hs = Pool::empty({steps + 1, B, H}, xw.options()), cs = Pool::empty({steps + 1, B, H}, xw.options());
  hs.select(0, 0).copy_(h0);
  cs.select(0, 0).copy_(c0);
  Tensor gates = Pool::empty({steps, B, 4 * H}, xw.options()), tanh_c = Pool::empty({steps, B, H}, xw.options());
  Tensor out = Pool::empty({steps, B, H}, xw.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_lstm_forward", [&] {
    lstm_forward_impl<scalar_t>(xw, w_hh, b_hh, peep, mask, hs, cs, gates, tanh_c, out);
  });
  return {out, hs, cs, gates, tanh_c};
}

template <typename T>
void lstm_backward_impl(const Tensor& d_out, const Tensor& w_hh, const std::optional<Tensor>& peep,
                        const std::optional<Tensor>& mask, const Tensor& cs, const Tensor& gates,
                        const Tensor& tanh_c, Tensor& d_a, Tensor& d_h, Tensor& d_c) {
  const int64_t steps = d_out.size(0), B = d_out.size(1), H = d_h.size(1);
  const T* pi = peep.has_value() ? peep->const_data_ptr<T>() : nullptr;
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  const T *d_out_ = d_out.const_data_ptr<T>(), *gates_ = gates.const_data_ptr<T>(), *tanh_c_ = tanh_c.const_data_ptr<T>();
  const T* cs_ = cs.const_data_ptr<T>();
  T *d_a_ = d_a.data_ptr<T>(), *dc_ = d_c.data_ptr<T>();
  const Vec<T> one(1);
  // dL/dh_{t-1} = dp + dL/da_t W_hh
  Steps<T>(w_hh.t().contiguous(), B).backward(steps, d_a, d_h, [&](int64_t t, int64_t b, const T* dh, T* dp) {
    const int64_t r = (t * B + b) * H;
    const T *dout_t = d_out_ + r, *g_t = gates_ + 4 * r, *tc_t = tanh_c_ + r, *c_prev = cs_ + r;
    T* da_t = d_a_ + 4 * r;
    T* dc = dc_ + b * H;
    if (m != nullptr && m[t * B + b] == T(0)) {  // padding: the state's gradient passes through
      std::fill(da_t, da_t + 4 * H, T(0));
      std::copy(dh, dh + H, dp);
      return;
    }
    lanes<T>(H, [&](int64_t j, int64_t n) {
      const T* gg = g_t + j;
      const Vec<T> i = load(gg, n), f = load(gg + H, n), g = load(gg + 2 * H, n), o = load(gg + 3 * H, n);
      const Vec<T> tc = load(tc_t + j, n), cp = load(c_prev + j, n);
      const Vec<T> dhn = load(dh + j, n) + load(dout_t + j, n);  // h_t is the output too
      const Vec<T> d_ao = dhn * tc * o * (one - o);
      Vec<T> dct = load(dc + j, n) + dhn * o * (one - tc * tc);  // c_t feeds h_t and c_{t+1}
      if (pi != nullptr) dct = dct + d_ao * load(pi + 2 * H + j, n);  // ... and o_t
      const Vec<T> d_ai = dct * g * i * (one - i);
      const Vec<T> d_af = dct * cp * f * (one - f);
      const Vec<T> d_ag = dct * i * (one - g * g);
      T* da = da_t + j;
      d_ai.store(da, n);
      d_af.store(da + H, n);
      d_ag.store(da + 2 * H, n);
      d_ao.store(da + 3 * H, n);
      Vec<T> dcp = dct * f;
      if (pi != nullptr) dcp = dcp + d_ai * load(pi + j, n) + d_af * load(pi + H + j, n);
      dcp.store(dc + j, n);
      Vec<T>(0).store(dp + j, n);
    });
  });
}

// -> (dL/da (T, B, 4H): dL/dxw and dL/dhw alike, dL/dh_0, dL/dc_0)
std::tuple<Tensor, Tensor, Tensor> lstm_backward(const Tensor& d_out, const Tensor& d_hT, const Tensor& d_cT,
                                                 const Tensor& w_hh, const std::optional<Tensor>& peep,
                                                 const std::optional<Tensor>& mask, const Tensor& cs,
                                                 const Tensor& gates, const Tensor& tanh_c) {
  Tensor d_a = Pool::empty(gates.sizes(), gates.options()), d_h = d_hT.clone(at::MemoryFormat::Contiguous), d_c = d_cT.clone(at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "rnnlab_lstm_backward", [&] {
    lstm_backward_impl<scalar_t>(d_out.contiguous(), w_hh, peep, mask, cs, gates, tanh_c, d_a, d_h, d_c);
  });
  return {d_a, d_h, d_c};
}

// ------------------------------------------------------------------------------- layer-norm LSTM
//   hw = W_hh h_{t-1};  a = xw_t + gamma_h * LN(hw) + b_hh  (xw already holds LN(W_ih x) + b_ih)
//   i, f, g, o as the LSTM; c_t = f c_{t-1} + i g;  h_t = o tanh(gamma_c * LN(c_t) + beta_c)
// LN(v) = (v - mean v) / sqrt(var v + eps) over a row (4H, or H): two passes over the row per norm.

template <typename T>
inline std::pair<T, T> row_moments(const T* v, int64_t n_features, double eps) {  // (mean, 1 / sqrt(var + eps))
  Vec<T> acc(0);
  lanes<T>(n_features, [&](int64_t j, int64_t n) { acc = acc + Vec<T>::set(Vec<T>(0), load(v + j, n), n); });
  T buf[Vec<T>::size()];
  acc.store(buf);
  T sum = 0;
  for (int64_t k = 0; k < Vec<T>::size(); ++k) sum += buf[k];
  const T mean = sum / T(n_features);
  Vec<T> sq(0);
  lanes<T>(n_features, [&](int64_t j, int64_t n) {
    const Vec<T> d = load(v + j, n) - Vec<T>(mean);
    sq = sq + Vec<T>::set(Vec<T>(0), d * d, n);
  });
  sq.store(buf);
  T var = 0;
  for (int64_t k = 0; k < Vec<T>::size(); ++k) var += buf[k];
  var /= T(n_features);
  return {mean, T(1) / std::sqrt(var + T(eps))};
}

template <typename T, typename F>
inline std::pair<T, T> row_sums(int64_t n_features, const F& f) {  // sums over the row of f's two vectors
  Vec<T> a(0), b(0);
  lanes<T>(n_features, [&](int64_t j, int64_t n) {
    auto [u, v] = f(j, n);
    a = a + Vec<T>::set(Vec<T>(0), u, n);
    b = b + Vec<T>::set(Vec<T>(0), v, n);
  });
  T ba[Vec<T>::size()], bb[Vec<T>::size()];
  a.store(ba);
  b.store(bb);
  T sa = 0, sb = 0;
  for (int64_t k = 0; k < Vec<T>::size(); ++k) {
    sa += ba[k];
    sb += bb[k];
  }
  return {sa, sb};
}

template <typename T>
void lnlstm_forward_impl(const Tensor& xw, const Tensor& w_hh, const Tensor& norm, double eps, const std::optional<Tensor>& mask,
                         Tensor& hs, Tensor& cs, Tensor& gates, Tensor& xhat_h, Tensor& rstd_h,
                         Tensor& xhat_c, Tensor& rstd_c, Tensor& tanh_c, Tensor& out) {
  const int64_t steps = xw.size(0), B = xw.size(1), H = hs.size(2), G = 4 * H;
  const T* gamma_h = norm.const_data_ptr<T>();  // norm: (gamma_h (4H), b_hh (4H), gamma_c (H), beta_c (H))
  const T* beta_h = gamma_h + G;
  const T* gamma_c = gamma_h + 2 * G;
  const T* beta_c = gamma_c + H;
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  const T* xw_ = xw.const_data_ptr<T>();
  T *hs_ = hs.data_ptr<T>(), *cs_ = cs.data_ptr<T>(), *gates_ = gates.data_ptr<T>(), *xhat_h_ = xhat_h.data_ptr<T>();
  T *xhat_c_ = xhat_c.data_ptr<T>(), *tanh_c_ = tanh_c.data_ptr<T>(), *out_ = out.data_ptr<T>();
  T *rstd_h_ = rstd_h.data_ptr<T>(), *rstd_c_ = rstd_c.data_ptr<T>();
  // hw (4H) = W_hh h_{t-1} for row b of step t
  Steps<T>(w_hh, B).forward(steps, hs, std::nullopt, std::nullopt, [&](int64_t t, int64_t b, const T* hw) {
    const int64_t r = (t * B + b) * H, r4 = 4 * r;
    const T *c_prev = cs_ + r, *h_prev = hs_ + r, *x_t = xw_ + r4;
    T *c_new = cs_ + r + B * H, *h_new = hs_ + r + B * H, *g_t = gates_ + r4, *xh_t = xhat_h_ + r4;
    T *xc_t = xhat_c_ + r, *tc_t = tanh_c_ + r, *o_t = out_ + r;
    if (m != nullptr && m[t * B + b] == T(0)) {
      std::copy(h_prev, h_prev + H, h_new);
      std::copy(c_prev, c_prev + H, c_new);
      std::fill(o_t, o_t + H, T(0));
      std::fill(xh_t, xh_t + G, T(0));  // read by the norms' parameter gradients (times a zero)
      std::fill(xc_t, xc_t + H, T(0));
      rstd_h_[t * B + b] = T(0);
      rstd_c_[t * B + b] = T(0);
      return;
    }
    const auto [mean_h, inv_h] = row_moments<T>(hw, G, eps);
    rstd_h_[t * B + b] = inv_h;
    lanes<T>(G, [&](int64_t j, int64_t n) {  // the normalised hidden product, then a = xw + gamma LN(hw) + b
      const Vec<T> xh = (load(hw + j, n) - Vec<T>(mean_h)) * Vec<T>(inv_h);
      xh.store(xh_t + j, n);
      (load(x_t + j, n) + load(gamma_h + j, n) * xh + load(beta_h + j, n)).store(g_t + j, n);
    });
    lanes<T>(H, [&](int64_t j, int64_t n) {  // gates (in place of a) and the cell
      T* gg = g_t + j;
      const Vec<T> i = sigmoid(load(gg, n)), f = sigmoid(load(gg + H, n)), g = tanh(load(gg + 2 * H, n));
      const Vec<T> o = sigmoid(load(gg + 3 * H, n));
      i.store(gg, n);
      f.store(gg + H, n);
      g.store(gg + 2 * H, n);
      o.store(gg + 3 * H, n);
      (f * load(c_prev + j, n) + i * g).store(c_new + j, n);
    });
    const auto [mean_c, inv_c] = row_moments<T>(c_new, H, eps);
    rstd_c_[t * B + b] = inv_c;
    lanes<T>(H, [&](int64_t j, int64_t n) {
      const Vec<T> xc = (load(c_new + j, n) - Vec<T>(mean_c)) * Vec<T>(inv_c);
      const Vec<T> tc = tanh(load(gamma_c + j, n) * xc + load(beta_c + j, n));
      const Vec<T> h = load(g_t + 3 * H + j, n) * tc;
      xc.store(xc_t + j, n);
      tc.store(tc_t + j, n);
      h.store(h_new + j, n);
      h.store(o_t + j, n);
    });
  });
}

// -> (out, hs, cs, gates (i, f, g, o), xhat_h (T, B, 4H), rstd_h (T, B), xhat_c (T, B, H), rstd_c (T, B), tanh_c)
std::vector<Tensor> lnlstm_forward(const Tensor& xw, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                   const Tensor& norm, double eps, const std::optional<Tensor>& mask) {
  check(xw, h0, w_hh, 4);
  const int64_t steps = xw.size(0), B = xw.size(1), H = h0.size(1);
  const auto o = xw.options();
  Tensor hs = Pool::empty({steps + 1, B, H}, o), cs = Pool::empty({steps + 1, B, H}, o);
  hs.select(0, 0).copy_(h0);
  cs.select(0, 0).copy_(c0);
  Tensor gates = Pool::empty({steps, B, 4 * H}, o), xhat_h = Pool::empty({steps, B, 4 * H}, o);
  Tensor rstd_h = at::empty({steps, B}, o), rstd_c = at::empty({steps, B}, o);
  Tensor xhat_c = Pool::empty({steps, B, H}, o), tanh_c = Pool::empty({steps, B, H}, o), out = Pool::empty({steps, B, H}, o);
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_lnlstm_forward", [&] {
    lnlstm_forward_impl<scalar_t>(xw, w_hh, norm.contiguous(), eps, mask, hs, cs, gates, xhat_h, rstd_h, xhat_c,
                                  rstd_c, tanh_c, out);
  });
  return {out, hs, cs, gates, xhat_h, rstd_h, xhat_c, rstd_c, tanh_c};
}

template <typename T>
void lnlstm_backward_impl(const Tensor& d_out, const Tensor& w_hh, const Tensor& norm, const std::optional<Tensor>& mask,
                          const Tensor& cs, const Tensor& gates, const Tensor& xhat_h, const Tensor& rstd_h,
                          const Tensor& xhat_c, const Tensor& rstd_c, const Tensor& tanh_c, Tensor& d_a, Tensor& d_hw,
                          Tensor& d_norm, Tensor& d_h, Tensor& d_c) {
  const int64_t steps = d_out.size(0), B = d_out.size(1), H = d_h.size(1), G = 4 * H, N = 2 * G + 2 * H;
  // per row, summed over steps: dL/d(gamma_h, b_hh, gamma_c, beta_c); a row is one thread's at a time
  Tensor acc = at::zeros({B, N}, d_out.options());
  Tensor d_lnc = at::empty({B, H}, d_out.options());  // this step's dL/d LN(c_t)
  const T* gamma_h = norm.const_data_ptr<T>();
  const T* gamma_c = gamma_h + 2 * G;
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  const T *d_out_ = d_out.const_data_ptr<T>(), *gates_ = gates.const_data_ptr<T>(), *xhat_h_ = xhat_h.const_data_ptr<T>();
  const T *xhat_c_ = xhat_c.const_data_ptr<T>(), *tanh_c_ = tanh_c.const_data_ptr<T>(), *cs_ = cs.const_data_ptr<T>();
  const T *rstd_h_ = rstd_h.const_data_ptr<T>(), *rstd_c_ = rstd_c.const_data_ptr<T>();
  T *d_a_ = d_a.data_ptr<T>(), *d_hw_ = d_hw.data_ptr<T>(), *acc_ = acc.data_ptr<T>(), *dl_ = d_lnc.data_ptr<T>();
  T* dc_ = d_c.data_ptr<T>();
  const Vec<T> one(1);
  // dL/dh_{t-1} = dp + dL/dhw_t W_hh
  Steps<T>(w_hh.t().contiguous(), B).backward(steps, d_hw, d_h, [&](int64_t t, int64_t b, const T* dh, T* dp) {
    const int64_t r = (t * B + b) * H, r4 = 4 * r;
    const T *dout_t = d_out_ + r, *g_t = gates_ + r4, *xh_t = xhat_h_ + r4, *xc_t = xhat_c_ + r, *tc_t = tanh_c_ + r;
    const T* c_prev = cs_ + r;
    T *da_t = d_a_ + r4, *dhw_t = d_hw_ + r4, *dl = dl_ + b * H, *dc = dc_ + b * H;
    if (m != nullptr && m[t * B + b] == T(0)) {
      std::fill(da_t, da_t + G, T(0));
      std::fill(dhw_t, dhw_t + G, T(0));
      std::copy(dh, dh + H, dp);
      return;
    }
    T* gh = acc_ + b * N;  // this row's sums: gamma_h, b_hh (4H each), gamma_c, beta_c (H each)
    T* gc = gh + 2 * G;
    // dL/d LN(c), and the two sums of LN's backward
    const auto [s1, s2] = row_sums<T>(H, [&](int64_t j, int64_t n) {
      const Vec<T> o = load(g_t + 3 * H + j, n), tc = load(tc_t + j, n);
      const Vec<T> dlj = (load(dh + j, n) + load(dout_t + j, n)) * o * (one - tc * tc);
      dlj.store(dl + j, n);
      at::vec::fmadd(dlj, load(xc_t + j, n), load(gc + j, n)).store(gc + j, n);
      (load(gc + H + j, n) + dlj).store(gc + H + j, n);
      const Vec<T> dx = dlj * load(gamma_c + j, n);
      return std::pair<Vec<T>, Vec<T>>{dx, dx * load(xc_t + j, n)};
    });
    const T inv_c = rstd_c_[t * B + b];
    const T mean1 = s1 / T(H), mean2 = s2 / T(H);
    lanes<T>(H, [&](int64_t j, int64_t n) {
      const T* gg = g_t + j;
      const Vec<T> i = load(gg, n), f = load(gg + H, n), g = load(gg + 2 * H, n), o = load(gg + 3 * H, n);
      const Vec<T> dhn = load(dh + j, n) + load(dout_t + j, n);
      const Vec<T> dx = load(dl + j, n) * load(gamma_c + j, n);
      const Vec<T> dc_norm = Vec<T>(inv_c) * (dx - Vec<T>(mean1) - load(xc_t + j, n) * Vec<T>(mean2));
      const Vec<T> dct = load(dc + j, n) + dc_norm;  // c_t feeds LN(c_t) and c_{t+1}
      T* da = da_t + j;
      (dct * g * i * (one - i)).store(da, n);
      (dct * load(c_prev + j, n) * f * (one - f)).store(da + H, n);
      (dct * i * (one - g * g)).store(da + 2 * H, n);
      (dhn * load(tc_t + j, n) * o * (one - o)).store(da + 3 * H, n);
      (dct * f).store(dc + j, n);
      Vec<T>(0).store(dp + j, n);
    });
    // through a = ... + gamma_h LN(hw): dL/dhw
    const auto [s3, s4] = row_sums<T>(G, [&](int64_t j, int64_t n) {
      const Vec<T> dx = load(da_t + j, n) * load(gamma_h + j, n);
      return std::pair<Vec<T>, Vec<T>>{dx, dx * load(xh_t + j, n)};
    });
    const T inv_h = rstd_h_[t * B + b];
    const T mean3 = s3 / T(G), mean4 = s4 / T(G);
    lanes<T>(G, [&](int64_t j, int64_t n) {
      const Vec<T> da = load(da_t + j, n), xh = load(xh_t + j, n);
      const Vec<T> dx = da * load(gamma_h + j, n);
      (Vec<T>(inv_h) * (dx - Vec<T>(mean3) - xh * Vec<T>(mean4))).store(dhw_t + j, n);
      at::vec::fmadd(da, xh, load(gh + j, n)).store(gh + j, n);
      (load(gh + G + j, n) + da).store(gh + G + j, n);
    });
  });
  d_norm = acc.sum(0);
}

// -> (dL/da (T, B, 4H) = dL/dxw, dL/dhw (T, B, 4H), dL/d(gamma_h, b_hh, gamma_c, beta_c) (10H), dL/dh_0, dL/dc_0)
std::vector<Tensor> lnlstm_backward(const Tensor& d_out, const Tensor& d_hT, const Tensor& d_cT, const Tensor& w_hh,
                                    const Tensor& norm, const std::optional<Tensor>& mask, const Tensor& cs,
                                    const Tensor& gates, const Tensor& xhat_h, const Tensor& rstd_h, const Tensor& xhat_c,
                                    const Tensor& rstd_c, const Tensor& tanh_c) {
  Tensor d_a = Pool::empty(gates.sizes(), gates.options()), d_hw = Pool::empty(gates.sizes(), gates.options());
  Tensor d_norm, d_h = d_hT.clone(at::MemoryFormat::Contiguous), d_c = d_cT.clone(at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "rnnlab_lnlstm_backward", [&] {
    lnlstm_backward_impl<scalar_t>(d_out.contiguous(), w_hh, norm.contiguous(), mask, cs, gates, xhat_h, rstd_h,
                                   xhat_c, rstd_c, tanh_c, d_a, d_hw, d_norm, d_h, d_c);
  });
  return {d_a, d_hw, d_norm, d_h, d_c};
}

// ------------------------------------------------------------------------------------------ GRU

template <typename T>
void gru_forward_impl(const Tensor& xw, const Tensor& w_hh, const std::optional<Tensor>& b_hh,
                      const std::optional<Tensor>& mask, Tensor& hs, Tensor& gates, Tensor& h_n,
                      Tensor& out) {
  const int64_t steps = xw.size(0), B = xw.size(1), H = hs.size(2);
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  const T* xw_ = xw.const_data_ptr<T>();
  T *hs_ = hs.data_ptr<T>(), *gates_ = gates.data_ptr<T>(), *h_n_ = h_n.data_ptr<T>(), *out_ = out.data_ptr<T>();
  // a (3H) = W_hh h_{t-1} + b_hh for row b of step t
  Steps<T>(w_hh, B).forward(steps, hs, std::nullopt, b_hh, [&](int64_t t, int64_t b, const T* a) {
    const int64_t r = (t * B + b) * H, r3 = 3 * r;
    const T *x_t = xw_ + r3, *h_prev = hs_ + r;
    T *h_new = hs_ + r + B * H, *g_t = gates_ + r3, *hn_t = h_n_ + r, *o_t = out_ + r;
    if (m != nullptr && m[t * B + b] == T(0)) {
      std::copy(h_prev, h_prev + H, h_new);
      std::fill(o_t, o_t + H, T(0));
      return;
    }
    lanes<T>(H, [&](int64_t j, int64_t n) {
      const T* x = x_t + j;
      const Vec<T> rr = sigmoid(load(x, n) + load(a + j, n));
      const Vec<T> z = sigmoid(load(x + H, n) + load(a + H + j, n));
      const Vec<T> hn = load(a + 2 * H + j, n);
      const Vec<T> nn = tanh(load(x + 2 * H, n) + rr * hn);
      const Vec<T> hp = load(h_prev + j, n);
      const Vec<T> h = nn + z * (hp - nn);
      T* gg = g_t + j;
      rr.store(gg, n);
      z.store(gg + H, n);
      nn.store(gg + 2 * H, n);
      hn.store(hn_t + j, n);
      h.store(h_new + j, n);
      h.store(o_t + j, n);
    });
  });
}

// -> (out (T, B, H), hs (T+1, B, H), gates (T, B, 3H) = r, z, n, hw_n (T, B, H) = W_hn h_{t-1} + b_hn)
std::tuple<Tensor, Tensor, Tensor, Tensor> gru_forward(const Tensor& xw, const Tensor& h0, const Tensor& w_hh,
                                                       const std::optional<Tensor>& b_hh,
                                                       const std::optional<Tensor>& mask) {
  check(xw, h0, w_hh, 3);
  const int64_t steps = xw.size(0), B = xw.size(1), H = h0.size(1);
  Tensor hs = Pool::empty({steps + 1, B, H}, xw.options());
  hs.select(0, 0).copy_(h0);
  Tensor gates = Pool::empty({steps, B, 3 * H}, xw.options()), h_n = Pool::empty({steps, B, H}, xw.options());
  Tensor out = Pool::empty({steps, B, H}, xw.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_gru_forward", [&] {
    gru_forward_impl<scalar_t>(xw, w_hh, b_hh, mask, hs, gates, h_n, out);
  });
  return {out, hs, gates, h_n};
}

template <typename T>
void gru_backward_impl(const Tensor& d_out, const Tensor& w_hh, const std::optional<Tensor>& mask,
                       const Tensor& hs, const Tensor& gates, const Tensor& h_n, Tensor& d_xw, Tensor& d_hw, Tensor& d_h) {
  const int64_t steps = d_out.size(0), B = d_out.size(1), H = d_h.size(1);
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  const T *d_out_ = d_out.const_data_ptr<T>(), *gates_ = gates.const_data_ptr<T>(), *h_n_ = h_n.const_data_ptr<T>();
  const T* hs_ = hs.const_data_ptr<T>();
  T *d_xw_ = d_xw.data_ptr<T>(), *d_hw_ = d_hw.data_ptr<T>();
  const Vec<T> one(1);
  // dL/dh_{t-1} = dp + dL/dhw_t W_hh
  Steps<T>(w_hh.t().contiguous(), B).backward(steps, d_hw, d_h, [&](int64_t t, int64_t b, const T* dh, T* dp) {
    const int64_t r = (t * B + b) * H, r3 = 3 * r;
    const T *dout_t = d_out_ + r, *g_t = gates_ + r3, *hn_t = h_n_ + r, *h_prev = hs_ + r;
    T *dx_t = d_xw_ + r3, *dw_t = d_hw_ + r3;
    if (m != nullptr && m[t * B + b] == T(0)) {
      std::fill(dx_t, dx_t + 3 * H, T(0));
      std::fill(dw_t, dw_t + 3 * H, T(0));
      std::copy(dh, dh + H, dp);
      return;
    }
    lanes<T>(H, [&](int64_t j, int64_t n) {
      const T* gg = g_t + j;
      const Vec<T> rr = load(gg, n), z = load(gg + H, n), nn = load(gg + 2 * H, n);
      const Vec<T> hn = load(hn_t + j, n), hp = load(h_prev + j, n);
      const Vec<T> dhn = load(dh + j, n) + load(dout_t + j, n);
      const Vec<T> d_an = dhn * (one - z) * (one - nn * nn);  // through n = tanh(...)
      const Vec<T> d_ar = d_an * hn * rr * (one - rr);
      const Vec<T> d_az = dhn * (hp - nn) * z * (one - z);
      T* dx = dx_t + j;
      T* dw = dw_t + j;
      d_ar.store(dx, n);
      d_az.store(dx + H, n);
      d_an.store(dx + 2 * H, n);
      d_ar.store(dw, n);
      d_az.store(dw + H, n);
      (d_an * rr).store(dw + 2 * H, n);  // r multiplies W_hn h + b_hn
      (dhn * z).store(dp + j, n);
    });
  });
}

// -> (dL/dxw (T, B, 3H), dL/dhw (T, B, 3H), dL/dh_0)
std::tuple<Tensor, Tensor, Tensor> gru_backward(const Tensor& d_out, const Tensor& d_hT, const Tensor& w_hh,
                                                const std::optional<Tensor>& mask, const Tensor& hs,
                                                const Tensor& gates, const Tensor& h_n) {
  Tensor d_xw = Pool::empty(gates.sizes(), gates.options()), d_hw = Pool::empty(gates.sizes(), gates.options());
  Tensor d_h = d_hT.clone(at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "rnnlab_gru_backward", [&] {
    gru_backward_impl<scalar_t>(d_out.contiguous(), w_hh, mask, hs, gates, h_n, d_xw, d_hw, d_h);
  });
  return {d_xw, d_hw, d_h};
}

// ------------------------------------------------------------------------------------------ RNN

template <typename T>
void rnn_forward_impl(const Tensor& xw, const Tensor& w_hh, const std::optional<Tensor>& b_hh,
                      const std::optional<Tensor>& mask, bool relu, Tensor& hs, Tensor& out) {
  const int64_t steps = xw.size(0), B = xw.size(1), H = hs.size(2);
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  T *hs_ = hs.data_ptr<T>(), *out_ = out.data_ptr<T>();
  // a (H) = xw_t + W_hh h_{t-1} + b_hh for row b of step t
  Steps<T>(w_hh, B).forward(steps, hs, xw, b_hh, [&](int64_t t, int64_t b, const T* a) {
    const int64_t r = (t * B + b) * H;
    const T* h_prev = hs_ + r;
    T *h_new = hs_ + r + B * H, *o_t = out_ + r;
    if (m != nullptr && m[t * B + b] == T(0)) {
      std::copy(h_prev, h_prev + H, h_new);
      std::fill(o_t, o_t + H, T(0));
      return;
    }
    lanes<T>(H, [&](int64_t j, int64_t n) {
      const Vec<T> pre = load(a + j, n);
      const Vec<T> h = relu ? at::vec::maximum(pre, Vec<T>(0)) : tanh(pre);
      h.store(h_new + j, n);
      h.store(o_t + j, n);
    });
  });
}

// -> (out (T, B, H), hs (T+1, B, H))
std::tuple<Tensor, Tensor> rnn_forward(const Tensor& xw, const Tensor& h0, const Tensor& w_hh,
                                       const std::optional<Tensor>& b_hh, const std::optional<Tensor>& mask, bool relu) {
  check(xw, h0, w_hh, 1);
  const int64_t steps = xw.size(0), B = xw.size(1), H = h0.size(1);
  Tensor hs = Pool::empty({steps + 1, B, H}, xw.options());
  hs.select(0, 0).copy_(h0);
  Tensor out = Pool::empty({steps, B, H}, xw.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_rnn_forward", [&] {
    rnn_forward_impl<scalar_t>(xw, w_hh, b_hh, mask, relu, hs, out);
  });
  return {out, hs};
}

template <typename T>
void rnn_backward_impl(const Tensor& d_out, const Tensor& w_hh, const std::optional<Tensor>& mask, const Tensor& hs,
                       bool relu, Tensor& d_pre, Tensor& d_h) {
  const int64_t steps = d_out.size(0), B = d_out.size(1), H = d_h.size(1);
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  const T *d_out_ = d_out.const_data_ptr<T>(), *hs_ = hs.const_data_ptr<T>();
  T* d_pre_ = d_pre.data_ptr<T>();
  const Vec<T> one(1), zero(0);
  // dL/dh_{t-1} = dp + dL/dpre_t W_hh
  Steps<T>(w_hh.t().contiguous(), B).backward(steps, d_pre, d_h, [&](int64_t t, int64_t b, const T* dh, T* dp) {
    const int64_t r = (t * B + b) * H;
    const T *dout_t = d_out_ + r, *h_t = hs_ + r + B * H;
    T* dpre_t = d_pre_ + r;
    if (m != nullptr && m[t * B + b] == T(0)) {
      std::fill(dpre_t, dpre_t + H, T(0));
      std::copy(dh, dh + H, dp);
      return;
    }
    lanes<T>(H, [&](int64_t j, int64_t n) {
      const Vec<T> h = load(h_t + j, n);
      const Vec<T> dhn = load(dh + j, n) + load(dout_t + j, n);
      const Vec<T> slope = relu ? ((h > zero) & one) : one - h * h;
      (dhn * slope).store(dpre_t + j, n);
      zero.store(dp + j, n);
    });
  });
}

// -> (dL/d(pre-activation) (T, B, H): dL/dxw and dL/dhw alike, dL/dh_0)
std::tuple<Tensor, Tensor> rnn_backward(const Tensor& d_out, const Tensor& d_hT, const Tensor& w_hh,
                                        const std::optional<Tensor>& mask, const Tensor& hs, bool relu) {
  Tensor d_pre = Pool::empty({d_out.size(0), d_out.size(1), d_hT.size(1)}, d_out.options()), d_h = d_hT.clone(at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "rnnlab_rnn_backward", [&] {
    rnn_backward_impl<scalar_t>(d_out.contiguous(), w_hh, mask, hs, relu, d_pre, d_h);
  });
  return {d_pre, d_h};
}

// ---------------------------------------------------------------------------- linear scan (minGRU)
//   h_t = a_t h_{t-1} + b_t over (B, T, H) in place: each sequence's T x H block is contiguous, so a
//   thread takes whole sequences and walks their steps with one fused multiply-add per element.
//   backward: dL/dh_t = dL/dout_t + a_{t+1} dL/dh_{t+1} = dL/db_t,  dL/da_t = dL/dh_t h_{t-1}.

template <typename T>
void scan_forward_impl(const T* a, const T* b, const T* h0, T* out, int64_t B, int64_t steps, int64_t H) {
  at::parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t s = lo; s < hi; ++s) {
      const T* prev = h0 + s * H;
      for (int64_t t = 0; t < steps; ++t) {
        const int64_t at_ = (s * steps + t) * H;
        lanes<T>(H, [&](int64_t j, int64_t n) {
          at::vec::fmadd(load(a + at_ + j, n), load(prev + j, n), load(b + at_ + j, n)).store(out + at_ + j, n);
        });
        prev = out + at_;
      }
    }
  });
}

Tensor scan_forward(const Tensor& a, const Tensor& b, const Tensor& h0) {
  TORCH_CHECK(a.dim() == 3 && a.sizes() == b.sizes() && h0.dim() == 2, "rnnlab native: scan sizes disagree");
  const Tensor ac = a.contiguous(), bc = b.contiguous(), hc = h0.contiguous();
  Tensor out = Pool::empty(a.sizes(), a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "rnnlab_scan_forward", [&] {
    scan_forward_impl<scalar_t>(ac.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(), hc.const_data_ptr<scalar_t>(),
                                out.data_ptr<scalar_t>(), a.size(0), a.size(1), a.size(2));
  });
  return out;
}

template <typename T>
void scan_backward_impl(const T* d_out, const T* a, const T* out, const T* h0, T* d_a, T* d_b, T* d_h0, int64_t B,
                        int64_t steps, int64_t H) {
  at::parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t s = lo; s < hi; ++s) {
      for (int64_t t = steps - 1; t >= 0; --t) {
        const int64_t at_ = (s * steps + t) * H;
        const T* prev = t > 0 ? out + at_ - H : h0 + s * H;
        lanes<T>(H, [&](int64_t j, int64_t n) {
          Vec<T> d = load(d_out + at_ + j, n);
          if (t + 1 < steps) d = at::vec::fmadd(load(a + at_ + H + j, n), load(d_b + at_ + H + j, n), d);
          d.store(d_b + at_ + j, n);
          (d * load(prev + j, n)).store(d_a + at_ + j, n);
          if (t == 0) (load(a + at_ + j, n) * d).store(d_h0 + s * H + j, n);
        });
      }
    }
  });
}

// -> (dL/da, dL/db, dL/dh_0)
std::tuple<Tensor, Tensor, Tensor> scan_backward(const Tensor& d_out, const Tensor& a, const Tensor& out, const Tensor& h0) {
  const Tensor dc = d_out.contiguous(), ac = a.contiguous(), hc = h0.contiguous();
  Tensor d_a = Pool::empty(a.sizes(), a.options()), d_b = Pool::empty(a.sizes(), a.options());
  Tensor d_h0 = at::zeros_like(hc);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "rnnlab_scan_backward", [&] {
    scan_backward_impl<scalar_t>(dc.const_data_ptr<scalar_t>(), ac.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(),
                                 hc.const_data_ptr<scalar_t>(), d_a.data_ptr<scalar_t>(), d_b.data_ptr<scalar_t>(),
                                 d_h0.data_ptr<scalar_t>(), a.size(0), a.size(1), a.size(2));
  });
  return {d_a, d_b, d_h0};
}

// ------------------------------------------------------------------ minimal RNNs, coefficients fused
// minGRU   xw = (k, v):      z = sigmoid(k);  a = 1 - z;  b = z g(v)
// minLSTM  xw = (kf, ki, v): f, i = sigmoid(kf), sigmoid(ki);  a = f / (f + i);  b = i / (f + i) g(v)
// g(v) = v + 1/2 (v >= 0), sigmoid(v) (v < 0);  h_t = a_t h_{t-1} + b_t; padding (mask 0): a = 1, b = 0.
// The coefficients are formed on the fly from xw, forward and backward: nothing but h is stored.

template <typename T>
struct Candidate {  // g(v) and g'(v)
  Vec<T> value, slope;
  explicit Candidate(const Vec<T>& v) {
    const Vec<T> one(1), half(0.5), s = sigmoid(v), positive = v >= Vec<T>(0);
    value = Vec<T>::blendv(s, v + half, positive);
    slope = Vec<T>::blendv(s * (one - s), one, positive);
  }
};

template <typename T>
void minimal_forward_impl(bool lstm, const T* xw, const T* h0, const T* m, T* out, int64_t B, int64_t steps, int64_t H) {
  const int64_t G = lstm ? 3 * H : 2 * H;
  at::parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    const Vec<T> one(1);
    for (int64_t s = lo; s < hi; ++s) {
      const T* prev = h0 + s * H;
      for (int64_t t = 0; t < steps; ++t) {
        const T* x = xw + (s * steps + t) * G;
        T* h = out + (s * steps + t) * H;
        if (m != nullptr && m[s * steps + t] == T(0)) {
          std::copy(prev, prev + H, h);
        } else {
          lanes<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> hp = load(prev + j, n);
            Vec<T> a, b;
            if (lstm) {
              const Vec<T> f = sigmoid(load(x + j, n)), i = sigmoid(load(x + H + j, n)), inv = one / (f + i);
              a = f * inv;
              b = i * inv * Candidate<T>(load(x + 2 * H + j, n)).value;
            } else {
              const Vec<T> z = sigmoid(load(x + j, n));
              a = one - z;
              b = z * Candidate<T>(load(x + H + j, n)).value;
            }
            at::vec::fmadd(a, hp, b).store(h + j, n);
          });
        }
        prev = h;
      }
    }
  });
}

template <typename T>
void minimal_backward_impl(bool lstm, const T* d_out, const T* xw, const T* out, const T* h0, const T* m, T* d_xw,
                           T* d_h0, int64_t B, int64_t steps, int64_t H) {
  const int64_t G = lstm ? 3 * H : 2 * H;
  at::parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    const Vec<T> one(1);
    std::vector<T> carry(H);  // a_{t+1} dL/dh_{t+1}: the gradient reaching h_t from the next step
    for (int64_t s = lo; s < hi; ++s) {
      std::fill(carry.begin(), carry.end(), T(0));
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T* x = xw + (s * steps + t) * G;
        T* dx = d_xw + (s * steps + t) * G;
        const T* dout = d_out + (s * steps + t) * H;
        const T* prev = t > 0 ? out + (s * steps + t - 1) * H : h0 + s * H;
        if (m != nullptr && m[s * steps + t] == T(0)) {  // the state passes through; the output was h_{t-1}
          std::fill(dx, dx + G, T(0));
          for (int64_t j = 0; j < H; ++j) carry[j] += dout[j];
          continue;
        }
        lanes<T>(H, [&](int64_t j, int64_t n) {
          const Vec<T> dh = load(dout + j, n) + load(carry.data() + j, n);  // dL/dh_t
          const Vec<T> hp = load(prev + j, n);
          if (lstm) {
            const Vec<T> f = sigmoid(load(x + j, n)), i = sigmoid(load(x + H + j, n)), inv = one / (f + i);
            const Candidate<T> g(load(x + 2 * H + j, n));
            const Vec<T> diff = dh * (g.value - hp) * inv * inv;  // dL/di = f diff, dL/df = -i diff
            (Vec<T>(0) - i * diff * f * (one - f)).store(dx + j, n);
            (f * diff * i * (one - i)).store(dx + H + j, n);
            (dh * i * inv * g.slope).store(dx + 2 * H + j, n);
            (f * inv * dh).store(carry.data() + j, n);
          } else {
            const Vec<T> z = sigmoid(load(x + j, n));
            const Candidate<T> g(load(x + H + j, n));
            (dh * (g.value - hp) * z * (one - z)).store(dx + j, n);
            (dh * z * g.slope).store(dx + H + j, n);
            ((one - z) * dh).store(carry.data() + j, n);
          }
        });
      }
      std::copy(carry.begin(), carry.end(), d_h0 + s * H);
    }
  });
}

// xw (B, T, 2H | 3H), h0 (B, H), mask (B, T) or None -> h (B, T, H)
Tensor minimal_forward(const Tensor& xw, const Tensor& h0, const std::optional<Tensor>& mask, bool lstm) {
  const Tensor xc = xw.contiguous(), hc = h0.contiguous();
  const int64_t B = xw.size(0), steps = xw.size(1), H = h0.size(1);
  TORCH_CHECK(xw.dim() == 3 && xw.size(2) == (lstm ? 3 : 2) * H, "rnnlab native: minimal cell sizes disagree");
  Tensor out = Pool::empty({B, steps, H}, xw.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_minimal_forward", [&] {
    minimal_forward_impl<scalar_t>(lstm, xc.const_data_ptr<scalar_t>(), hc.const_data_ptr<scalar_t>(),
                                   mask.has_value() ? mask->const_data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>(),
                                   B, steps, H);
  });
  return out;
}

// -> (dL/dxw, dL/dh_0)
std::tuple<Tensor, Tensor> minimal_backward(const Tensor& d_out, const Tensor& xw, const Tensor& out, const Tensor& h0,
                                            const std::optional<Tensor>& mask, bool lstm) {
  const Tensor dc = d_out.contiguous(), xc = xw.contiguous(), hc = h0.contiguous();
  const int64_t B = xw.size(0), steps = xw.size(1), H = h0.size(1);
  Tensor d_xw = Pool::empty(xw.sizes(), xw.options()), d_h0 = at::empty_like(hc);
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_minimal_backward", [&] {
    minimal_backward_impl<scalar_t>(lstm, dc.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(),
                                    out.const_data_ptr<scalar_t>(), hc.const_data_ptr<scalar_t>(),
                                    mask.has_value() ? mask->const_data_ptr<scalar_t>() : nullptr,
                                    d_xw.data_ptr<scalar_t>(), d_h0.data_ptr<scalar_t>(), B, steps, H);
  });
  return {d_xw, d_h0};
}

// ------------------------------------------------------------------------------- weight gradients
// dL/dW = d^T a summed over every step and row: d (N, G), a (N, K) -> (G, K), neither operand
// transposed. A tile of MR rows x NR vectors of columns of dL/dW sums over N in registers: at each n
// MR values of d's row broadcast, NR vectors of a's row loaded whole. N goes in chunks of NC, so that
// the chunk of a's columns a tile reads stays in L1 and the chunk of d in L2; threads own rows of dL/dW.
// Where a thread's columns of d for a chunk outgrow L2 (kPackFrom), it first copies them into blocks
// of MR, n-major, so that the tiles read d in order instead of a cache line and a page per n:
// measured on this CPU, 1.2x at G 2048-3072, 0.85x at G 256-512 (where the copy costs more than it saves).
template <typename T>
class OuterSum {
 public:
  static constexpr int64_t V = RowGemm<T>::V, NR = RowGemm<T>::NR, P = RowGemm<T>::P, MR = RowGemm<T>::MR;
  static constexpr int64_t NC = 256;
  static constexpr int64_t kPackFrom = int64_t(1) << 19;  // bytes of d per chunk and thread (half of L2 here)

  static void run(const T* d, const T* a, T* out, int64_t N, int64_t G, int64_t K) {
    at::parallel_for(0, (G + MR - 1) / MR, 1, [&](int64_t lo, int64_t hi) {
      const int64_t g_lo = lo * MR, g_hi = std::min(G, hi * MR), blocks = hi - lo;
      std::fill(out + g_lo * K, out + g_hi * K, T(0));
      const bool pack = NC * (g_hi - g_lo) * int64_t(sizeof(T)) > kPackFrom;
      std::vector<T> packed(pack ? blocks * NC * MR : 0, T(0));  // [block][n][m] = d[n0 + n, g_lo + block MR + m]
      for (int64_t n0 = 0; n0 < N; n0 += NC) {
        const int64_t nc = std::min(NC, N - n0);
        for (int64_t n = 0; pack && n < nc; ++n) {
          const T* src = d + (n0 + n) * G + g_lo;
          for (int64_t blk = 0; blk < blocks; ++blk) {
            T* dst = packed.data() + (blk * NC + n) * MR;
            const int64_t rows = std::min(MR, g_hi - g_lo - blk * MR);
            if (rows == MR) {
              for (int64_t m = 0; m < MR; ++m) dst[m] = src[blk * MR + m];  // a fixed-length copy the compiler inlines
            } else {
              for (int64_t m = 0; m < rows; ++m) dst[m] = src[blk * MR + m];
            }
          }
        }
        for (int64_t k0 = 0; k0 < K; k0 += P) {
          const int64_t cols = std::min(P, K - k0);
          for (int64_t g = g_lo; g < g_hi; g += MR) {
            const T* dd = pack ? packed.data() + (g - g_lo) / MR * NC * MR : d + n0 * G + g;
            const int64_t ld = pack ? MR : G;
            const T* aa = a + n0 * K + k0;
            T* o = out + g * K + k0;
            switch (std::min(MR, g_hi - g)) {
              case 1: block<1>(dd, aa, o, nc, ld, K, cols); break;
              case 2: block<2>(dd, aa, o, nc, ld, K, cols); break;
              case 3: block<3>(dd, aa, o, nc, ld, K, cols); break;
              case 4: block<4>(dd, aa, o, nc, ld, K, cols); break;
#if defined(CPU_CAPABILITY_AVX512)
              case 5: block<5>(dd, aa, o, nc, ld, K, cols); break;
              case 6: block<6>(dd, aa, o, nc, ld, K, cols); break;
              case 7: block<7>(dd, aa, o, nc, ld, K, cols); break;
              case 8: block<8>(dd, aa, o, nc, ld, K, cols); break;
#endif
              default: TORCH_CHECK(false, "rnnlab native: row block");
            }
          }
        }
      }
    });
  }

 private:
  // out (M rows, ld K) += d[:nc, :M]^T a[:nc, :cols]; d ld ldd, a ld K
  template <int64_t M>
  static void block(const T* d, const T* a, T* out, int64_t nc, int64_t ldd, int64_t K, int64_t cols) {
    Vec<T> acc[M][NR];
    int64_t count[NR];
    for (int64_t v = 0; v < NR; ++v) count[v] = std::clamp<int64_t>(cols - v * V, 0, V);
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t v = 0; v < NR; ++v) acc[m][v] = count[v] > 0 ? load(out + m * K + v * V, count[v]) : Vec<T>(0);
    }
    if (cols == P) {
      accumulate<true>(acc, nc, d, 1, ldd, a, K, count);
    } else {  // the last columns of a (K not a multiple of P)
      accumulate<false>(acc, nc, d, 1, ldd, a, K, count);
    }
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t v = 0; v < NR; ++v) {
        if (count[v] > 0) acc[m][v].store(out + m * K + v * V, count[v]);
      }
    }
  }
};

// d (N, G), a (N, K) -> d^T a (G, K)
Tensor weight_gradient(const Tensor& d, const Tensor& a) {
  TORCH_CHECK(d.dim() == 2 && a.dim() == 2 && d.size(0) == a.size(0), "rnnlab native: weight gradient sizes disagree");
  const Tensor dc = d.contiguous(), ac = a.contiguous();
  Tensor out = at::empty({d.size(1), a.size(1)}, d.options());
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "rnnlab_weight_gradient", [&] {
    OuterSum<scalar_t>::run(dc.const_data_ptr<scalar_t>(), ac.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), d.size(0),
                            d.size(1), a.size(1));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(rnnlab_native, m) {
  m.def("lstm_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, Tensor? b_hh, Tensor? peep, Tensor? mask)"
        " -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("lstm_backward(Tensor d_out, Tensor d_hT, Tensor d_cT, Tensor w_hh, Tensor? peep, Tensor? mask, Tensor cs,"
        " Tensor gates, Tensor tanh_c) -> (Tensor, Tensor, Tensor)");
  m.def("lnlstm_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, Tensor norm, float eps, Tensor? mask)"
        " -> Tensor[]");
  m.def("lnlstm_backward(Tensor d_out, Tensor d_hT, Tensor d_cT, Tensor w_hh, Tensor norm, Tensor? mask,"
        " Tensor cs, Tensor gates, Tensor xhat_h, Tensor rstd_h, Tensor xhat_c, Tensor rstd_c, Tensor tanh_c) -> Tensor[]");
  m.def("gru_forward(Tensor xw, Tensor h0, Tensor w_hh, Tensor? b_hh, Tensor? mask)"
        " -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("gru_backward(Tensor d_out, Tensor d_hT, Tensor w_hh, Tensor? mask, Tensor hs, Tensor gates,"
        " Tensor h_n)"
        " -> (Tensor, Tensor, Tensor)");
  m.def("scan_forward(Tensor a, Tensor b, Tensor h0) -> Tensor");
  m.def("scan_backward(Tensor d_out, Tensor a, Tensor out, Tensor h0) -> (Tensor, Tensor, Tensor)");
  m.def("minimal_forward(Tensor xw, Tensor h0, Tensor? mask, bool lstm) -> Tensor");
  m.def("minimal_backward(Tensor d_out, Tensor xw, Tensor out, Tensor h0, Tensor? mask, bool lstm) -> (Tensor, Tensor)");
  m.def("weight_gradient(Tensor d, Tensor a) -> Tensor");
  m.def("rnn_forward(Tensor xw, Tensor h0, Tensor w_hh, Tensor? b_hh, Tensor? mask, bool relu)"
        " -> (Tensor, Tensor)");
  m.def("rnn_backward(Tensor d_out, Tensor d_hT, Tensor w_hh, Tensor? mask, Tensor hs, bool relu)"
        " -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rnnlab_native, CPU, m) {
  m.impl("lstm_forward", &lstm_forward);
  m.impl("lstm_backward", &lstm_backward);
  m.impl("lnlstm_forward", &lnlstm_forward);
  m.impl("lnlstm_backward", &lnlstm_backward);
  m.impl("gru_forward", &gru_forward);
  m.impl("gru_backward", &gru_backward);
  m.impl("scan_forward", &scan_forward);
  m.impl("scan_backward", &scan_backward);
  m.impl("minimal_forward", &minimal_forward);
  m.impl("minimal_backward", &minimal_backward);
  m.impl("weight_gradient", &weight_gradient);
  m.impl("rnn_forward", &rnn_forward);
  m.impl("rnn_backward", &rnn_backward);
}
