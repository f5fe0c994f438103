// Fused CPU kernels for the hand-written BPTT of rnnlab/bptt.py (Python side: rnnlab/native.py).
//
// The Python loop of bptt.py issues about ten small tensor operations per step (each a dispatch,
// an allocation and a pass over memory) around the one GEMM that matters. Here a step is that GEMM
// (ATen's addmm, into a buffer allocated once) and ONE pass over the gate pre-activations that
// applies the whole cell's elementwise maths with SIMD vectors (at::vec, exp/tanh from Sleef as
// ATen's own kernels use them), rows of the batch shared between threads.
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
#include <ATen/core/dispatch/Dispatcher.h>
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

template <typename T>
inline Vec<T> sigmoid(const Vec<T>& x) {
  const Vec<T> one(1);
  return one / (one + x.neg().exp());
}

// f(j, n) over [0, H) in SIMD widths (n = lanes, the last call may be shorter).
template <typename T, typename F>
inline void lanes(int64_t H, const F& f) {
  constexpr int64_t V = Vec<T>::size();
  int64_t j = 0;
  for (; j + V <= H; j += V) f(j, V);
  if (j < H) f(j, H - j);
}

// f(b) for every row of the batch, shared between threads when a step has enough work.
template <typename F>
inline void rows(int64_t B, int64_t work_per_row, const F& f) {
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, work_per_row));
  at::parallel_for(0, B, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) f(b);
  });
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

// The step's GEMM, other + x w^T (+ bias), with the same w at every step. In float32, where a step
// is large enough to pay for the call, oneDNN's matrix product (the library behind torch.nn.LSTM on
// CPU, reached through the ops torch registers for it) with w reordered once into oneDNN's blocked
// layout: on this CPU 1.6-2.2x the GFLOP/s of the BLAS behind at::mm at these shapes (measured, see
// rnnlab/native.py). Elsewhere (small steps, float64) ATen's addmm into a buffer.
class Gemm {
 public:
  // w (N, K) contiguous; every x will be (rows, K), every other (rows, N) contiguous.
  Gemm(const Tensor& w, int64_t rows, bool use_onednn) : w_(w), onednn_(use_onednn && w.scalar_type() == at::kFloat) {
    if (onednn_) {
      static const auto reorder = c10::Dispatcher::singleton()
                                      .findSchemaOrThrow("mkldnn::_reorder_linear_weight", "")
                                      .typed<Tensor(const Tensor&, std::optional<int64_t>)>();
      packed_ = reorder.call(w, rows);
    } else {
      buffer_ = at::empty({rows, w.size(0)}, w.options());
    }
  }

  Tensor operator()(const Tensor& x, const std::optional<Tensor>& bias, const Tensor& other) {
    if (onednn_) {
      static const auto linear_add =  // mkldnn::_linear_pointwise.binary: X W^T + B + other
          c10::Dispatcher::singleton()
              .findSchemaOrThrow("mkldnn::_linear_pointwise", "binary")
              .typed<Tensor(const Tensor&, const Tensor&, const Tensor&, const std::optional<Tensor>&, c10::string_view)>();
      return linear_add.call(x, other, packed_, bias, "add");
    }
    if (bias.has_value()) {
      at::add_out(buffer_, other, *bias);
    } else {
      buffer_.copy_(other);
    }
    buffer_.addmm_(x, w_.t());
    return buffer_;
  }

 private:
  Tensor w_;
  bool onednn_;
  Tensor packed_;  // w in oneDNN's layout
  Tensor buffer_;  // (rows, N): the BLAS path's output
};

// ------------------------------------------------------------------------------------------ LSTM

template <typename T>
void lstm_forward_impl(const Tensor& xw, const Tensor& w_hh, const std::optional<Tensor>& b_hh,
                       const std::optional<Tensor>& peep, const std::optional<Tensor>& mask, bool onednn, Tensor& hs,
                       Tensor& cs, Tensor& gates, Tensor& tanh_c, Tensor& out) {
  const int64_t steps = xw.size(0), B = xw.size(1), H = hs.size(2);
  Gemm gemm(w_hh, B, onednn);
  const T* pi = peep.has_value() ? peep->const_data_ptr<T>() : nullptr;  // (3, H): p_i, p_f, p_o
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  for (int64_t t = 0; t < steps; ++t) {
    const Tensor pre = gemm(hs.select(0, t), b_hh, xw.select(0, t));  // (B, 4H) = xw_t + W_hh h + b_hh
    const T* a_t = pre.const_data_ptr<T>();
    const T* c_prev = cs.const_data_ptr<T>() + t * B * H;
    const T* h_prev = hs.const_data_ptr<T>() + t * B * H;
    T* c_new = cs.data_ptr<T>() + (t + 1) * B * H;
    T* h_new = hs.data_ptr<T>() + (t + 1) * B * H;
    T* g_t = gates.data_ptr<T>() + t * B * 4 * H;
    T* tc_t = tanh_c.data_ptr<T>() + t * B * H;
    T* o_t = out.data_ptr<T>() + t * B * H;
    rows(B, 4 * H, [&](int64_t b) {
      const int64_t r = b * H, r4 = b * 4 * H;
      if (m != nullptr && m[t * B + b] == T(0)) {  // padding: carry the state, output 0
        std::copy(h_prev + r, h_prev + r + H, h_new + r);
        std::copy(c_prev + r, c_prev + r + H, c_new + r);
        std::fill(o_t + r, o_t + r + H, T(0));
        return;
      }
      lanes<T>(H, [&](int64_t j, int64_t n) {
        const T* a = a_t + r4 + j;
        const Vec<T> cp = load(c_prev + r + j, n);
        Vec<T> ai = load(a, n), af = load(a + H, n), ao = load(a + 3 * H, n);
        const Vec<T> ag = load(a + 2 * H, n);
        if (pi != nullptr) {
          ai = ai + load(pi + j, n) * cp;
          af = af + load(pi + H + j, n) * cp;
        }
        const Vec<T> i = sigmoid(ai), f = sigmoid(af), g = ag.tanh();
        const Vec<T> c = f * cp + i * g;
        if (pi != nullptr) ao = ao + load(pi + 2 * H + j, n) * c;
        const Vec<T> o = sigmoid(ao), tc = c.tanh(), h = o * tc;
        T* gg = g_t + r4 + j;
        i.store(gg, n);
        f.store(gg + H, n);
        g.store(gg + 2 * H, n);
        o.store(gg + 3 * H, n);
        c.store(c_new + r + j, n);
        tc.store(tc_t + r + j, n);
        h.store(h_new + r + j, n);
        h.store(o_t + r + j, n);
      });
    });
  }
}

// -> (out (T, B, H), hs (T+1, B, H), cs (T+1, B, H), gates (T, B, 4H) = i, f, g, o, tanh_c (T, B, H))
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_forward(const Tensor& xw, const Tensor& h0, const Tensor& c0,
                                                               const Tensor& w_hh, const std::optional<Tensor>& b_hh,
                                                               const std::optional<Tensor>& peep,
                                                               const std::optional<Tensor>& mask, bool onednn) {
  check(xw, h0, w_hh, 4);
  const int64_t steps = xw.size(0), B = xw.size(1), H = h0.size(1);
  Tensor hs = Pool::empty({steps + 1, B, H}, xw.options()), cs = Pool::empty({steps + 1, B, H}, xw.options());
  hs.select(0, 0).copy_(h0);
  cs.select(0, 0).copy_(c0);
  Tensor gates = Pool::empty({steps, B, 4 * H}, xw.options()), tanh_c = Pool::empty({steps, B, H}, xw.options());
  Tensor out = Pool::empty({steps, B, H}, xw.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_lstm_forward", [&] {
    lstm_forward_impl<scalar_t>(xw, w_hh, b_hh, peep, mask, onednn, hs, cs, gates, tanh_c, out);
  });
  return {out, hs, cs, gates, tanh_c};
}

template <typename T>
void lstm_backward_impl(const Tensor& d_out, const Tensor& w_hh, const std::optional<Tensor>& peep,
                        const std::optional<Tensor>& mask, bool onednn, const Tensor& cs, const Tensor& gates,
                        const Tensor& tanh_c, Tensor& d_a, Tensor& d_h, Tensor& d_c) {
  const int64_t steps = d_out.size(0), B = d_out.size(1), H = d_h.size(1);
  Gemm gemm(w_hh.t().contiguous(), B, onednn);  // (H, 4H)
  const T* pi = peep.has_value() ? peep->const_data_ptr<T>() : nullptr;
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  Tensor d_prev = at::empty_like(d_h);
  const Vec<T> one(1);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* dout_t = d_out.const_data_ptr<T>() + t * B * H;
    const T* g_t = gates.const_data_ptr<T>() + t * B * 4 * H;
    const T* tc_t = tanh_c.const_data_ptr<T>() + t * B * H;
    const T* c_prev = cs.const_data_ptr<T>() + t * B * H;
    T* da_t = d_a.data_ptr<T>() + t * B * 4 * H;
    const T* dh = d_h.const_data_ptr<T>();
    T* dc = d_c.data_ptr<T>();
    T* dp = d_prev.data_ptr<T>();
    rows(B, 8 * H, [&](int64_t b) {
      const int64_t r = b * H, r4 = b * 4 * H;
      if (m != nullptr && m[t * B + b] == T(0)) {  // padding: the state's gradient passes through
        std::fill(da_t + r4, da_t + r4 + 4 * H, T(0));
        std::copy(dh + r, dh + r + H, dp + r);
        return;
      }
      lanes<T>(H, [&](int64_t j, int64_t n) {
        const T* gg = g_t + r4 + j;
        const Vec<T> i = load(gg, n), f = load(gg + H, n), g = load(gg + 2 * H, n), o = load(gg + 3 * H, n);
        const Vec<T> tc = load(tc_t + r + j, n), cp = load(c_prev + r + j, n);
        const Vec<T> dhn = load(dh + r + j, n) + load(dout_t + r + j, n);  // h_t is the output too
        const Vec<T> d_ao = dhn * tc * o * (one - o);
        Vec<T> dct = load(dc + r + j, n) + dhn * o * (one - tc * tc);  // c_t feeds h_t and c_{t+1}
        if (pi != nullptr) dct = dct + d_ao * load(pi + 2 * H + j, n);  // ... and o_t
        const Vec<T> d_ai = dct * g * i * (one - i);
        const Vec<T> d_af = dct * cp * f * (one - f);
        const Vec<T> d_ag = dct * i * (one - g * g);
        T* da = da_t + r4 + j;
        d_ai.store(da, n);
        d_af.store(da + H, n);
        d_ag.store(da + 2 * H, n);
        d_ao.store(da + 3 * H, n);
        Vec<T> dcp = dct * f;
        if (pi != nullptr) dcp = dcp + d_ai * load(pi + j, n) + d_af * load(pi + H + j, n);
        dcp.store(dc + r + j, n);
        Vec<T>(0).store(dp + r + j, n);
      });
    });
    d_h = gemm(d_a.select(0, t), std::nullopt, d_prev);  // dL/dh_{t-1} = the above + dL/da_t W_hh
  }
}

// -> (dL/da (T, B, 4H): dL/dxw and dL/dhw alike, dL/dh_0, dL/dc_0)
std::tuple<Tensor, Tensor, Tensor> lstm_backward(const Tensor& d_out, const Tensor& d_hT, const Tensor& d_cT,
                                                 const Tensor& w_hh, const std::optional<Tensor>& peep,
                                                 const std::optional<Tensor>& mask, bool onednn, const Tensor& cs,
                                                 const Tensor& gates, const Tensor& tanh_c) {
  Tensor d_a = Pool::empty(gates.sizes(), gates.options()), d_h = d_hT.clone(), d_c = d_cT.clone();
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "rnnlab_lstm_backward", [&] {
    lstm_backward_impl<scalar_t>(d_out.contiguous(), w_hh, peep, mask, onednn, cs, gates, tanh_c, d_a, d_h, d_c);
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
                         bool onednn, Tensor& hs, Tensor& cs, Tensor& gates, Tensor& xhat_h, Tensor& rstd_h,
                         Tensor& xhat_c, Tensor& rstd_c, Tensor& tanh_c, Tensor& out) {
  const int64_t steps = xw.size(0), B = xw.size(1), H = hs.size(2), G = 4 * H;
  Gemm gemm(w_hh, B, onednn);
  const Tensor none = at::zeros({B, G}, xw.options());
  const T* gamma_h = norm.const_data_ptr<T>();  // norm: (gamma_h (4H), b_hh (4H), gamma_c (H), beta_c (H))
  const T* beta_h = gamma_h + G;
  const T* gamma_c = gamma_h + 2 * G;
  const T* beta_c = gamma_c + H;
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  for (int64_t t = 0; t < steps; ++t) {
    const Tensor hw = gemm(hs.select(0, t), std::nullopt, none);  // (B, 4H) = W_hh h_{t-1}
    const T* x_t = xw.const_data_ptr<T>() + t * B * G;
    const T* hw_t = hw.const_data_ptr<T>();
    const T* c_prev = cs.const_data_ptr<T>() + t * B * H;
    const T* h_prev = hs.const_data_ptr<T>() + t * B * H;
    T* c_new = cs.data_ptr<T>() + (t + 1) * B * H;
    T* h_new = hs.data_ptr<T>() + (t + 1) * B * H;
    T* g_t = gates.data_ptr<T>() + t * B * G;
    T* xh_t = xhat_h.data_ptr<T>() + t * B * G;
    T* xc_t = xhat_c.data_ptr<T>() + t * B * H;
    T* tc_t = tanh_c.data_ptr<T>() + t * B * H;
    T* o_t = out.data_ptr<T>() + t * B * H;
    T* rh_t = rstd_h.data_ptr<T>() + t * B;
    T* rc_t = rstd_c.data_ptr<T>() + t * B;
    rows(B, 6 * G, [&](int64_t b) {
      const int64_t r = b * H, r4 = b * G;
      if (m != nullptr && m[t * B + b] == T(0)) {
        std::copy(h_prev + r, h_prev + r + H, h_new + r);
        std::copy(c_prev + r, c_prev + r + H, c_new + r);
        std::fill(o_t + r, o_t + r + H, T(0));
        std::fill(xh_t + r4, xh_t + r4 + G, T(0));  // read by the norms' parameter gradients (times a zero)
        std::fill(xc_t + r, xc_t + r + H, T(0));
        rh_t[b] = T(0);
        rc_t[b] = T(0);
        return;
      }
      const auto [mean_h, inv_h] = row_moments<T>(hw_t + r4, G, eps);
      rh_t[b] = inv_h;
      lanes<T>(G, [&](int64_t j, int64_t n) {  // the normalised hidden product, then a = xw + gamma LN(hw) + b
        const Vec<T> xh = (load(hw_t + r4 + j, n) - Vec<T>(mean_h)) * Vec<T>(inv_h);
        xh.store(xh_t + r4 + j, n);
        (load(x_t + r4 + j, n) + load(gamma_h + j, n) * xh + load(beta_h + j, n)).store(g_t + r4 + j, n);
      });
      lanes<T>(H, [&](int64_t j, int64_t n) {  // gates (in place of a) and the cell
        T* gg = g_t + r4 + j;
        const Vec<T> i = sigmoid(load(gg, n)), f = sigmoid(load(gg + H, n)), g = load(gg + 2 * H, n).tanh();
        const Vec<T> o = sigmoid(load(gg + 3 * H, n));
        i.store(gg, n);
        f.store(gg + H, n);
        g.store(gg + 2 * H, n);
        o.store(gg + 3 * H, n);
        (f * load(c_prev + r + j, n) + i * g).store(c_new + r + j, n);
      });
      const auto [mean_c, inv_c] = row_moments<T>(c_new + r, H, eps);
      rc_t[b] = inv_c;
      lanes<T>(H, [&](int64_t j, int64_t n) {
        const Vec<T> xc = (load(c_new + r + j, n) - Vec<T>(mean_c)) * Vec<T>(inv_c);
        const Vec<T> tc = (load(gamma_c + j, n) * xc + load(beta_c + j, n)).tanh();
        const Vec<T> h = load(g_t + r4 + 3 * H + j, n) * tc;
        xc.store(xc_t + r + j, n);
        tc.store(tc_t + r + j, n);
        h.store(h_new + r + j, n);
        h.store(o_t + r + j, n);
      });
    });
  }
}

// -> (out, hs, cs, gates (i, f, g, o), xhat_h (T, B, 4H), rstd_h (T, B), xhat_c (T, B, H), rstd_c (T, B), tanh_c)
std::vector<Tensor> lnlstm_forward(const Tensor& xw, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                   const Tensor& norm, double eps, const std::optional<Tensor>& mask, bool onednn) {
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
    lnlstm_forward_impl<scalar_t>(xw, w_hh, norm.contiguous(), eps, mask, onednn, hs, cs, gates, xhat_h, rstd_h, xhat_c,
                                  rstd_c, tanh_c, out);
  });
  return {out, hs, cs, gates, xhat_h, rstd_h, xhat_c, rstd_c, tanh_c};
}

template <typename T>
void lnlstm_backward_impl(const Tensor& d_out, const Tensor& w_hh, const Tensor& norm, const std::optional<Tensor>& mask,
                          bool onednn, const Tensor& cs, const Tensor& gates, const Tensor& xhat_h, const Tensor& rstd_h,
                          const Tensor& xhat_c, const Tensor& rstd_c, const Tensor& tanh_c, Tensor& d_a, Tensor& d_hw,
                          Tensor& d_norm, Tensor& d_h, Tensor& d_c) {
  const int64_t steps = d_out.size(0), B = d_out.size(1), H = d_h.size(1), G = 4 * H, N = 2 * G + 2 * H;
  // per row, summed over steps: dL/d(gamma_h, b_hh, gamma_c, beta_c); a row is one thread's at a time
  Tensor acc = at::zeros({B, N}, d_out.options());
  Tensor d_lnc = at::empty({B, H}, d_out.options());  // this step's dL/d LN(c_t)
  const T* gamma_h = norm.const_data_ptr<T>();
  const T* gamma_c = gamma_h + 2 * G;
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  Gemm gemm(w_hh.t().contiguous(), B, onednn);  // (H, 4H)
  Tensor d_prev = at::empty_like(d_h);
  const Vec<T> one(1);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* dout_t = d_out.const_data_ptr<T>() + t * B * H;
    const T* g_t = gates.const_data_ptr<T>() + t * B * G;
    const T* xh_t = xhat_h.const_data_ptr<T>() + t * B * G;
    const T* xc_t = xhat_c.const_data_ptr<T>() + t * B * H;
    const T* tc_t = tanh_c.const_data_ptr<T>() + t * B * H;
    const T* c_prev = cs.const_data_ptr<T>() + t * B * H;
    T* da_t = d_a.data_ptr<T>() + t * B * G;
    T* dhw_t = d_hw.data_ptr<T>() + t * B * G;
    T* dl_t = d_lnc.data_ptr<T>();
    T* acc_t = acc.data_ptr<T>();
    const T* rh_t = rstd_h.const_data_ptr<T>() + t * B;
    const T* rc_t = rstd_c.const_data_ptr<T>() + t * B;
    const T* dh = d_h.const_data_ptr<T>();
    T* dc = d_c.data_ptr<T>();
    T* dp = d_prev.data_ptr<T>();
    rows(B, 8 * G, [&](int64_t b) {
      const int64_t r = b * H, r4 = b * G;
      if (m != nullptr && m[t * B + b] == T(0)) {
        std::fill(da_t + r4, da_t + r4 + G, T(0));
        std::fill(dhw_t + r4, dhw_t + r4 + G, T(0));
        std::copy(dh + r, dh + r + H, dp + r);
        return;
      }
      T* gh = acc_t + b * N;  // this row's sums: gamma_h, b_hh (4H each), gamma_c, beta_c (H each)
      T* gc = gh + 2 * G;
      // dL/d LN(c), and the two sums of LN's backward
      const auto [s1, s2] = row_sums<T>(H, [&](int64_t j, int64_t n) {
        const Vec<T> o = load(g_t + r4 + 3 * H + j, n), tc = load(tc_t + r + j, n);
        const Vec<T> dl = (load(dh + r + j, n) + load(dout_t + r + j, n)) * o * (one - tc * tc);
        dl.store(dl_t + r + j, n);
        at::vec::fmadd(dl, load(xc_t + r + j, n), load(gc + j, n)).store(gc + j, n);
        (load(gc + H + j, n) + dl).store(gc + H + j, n);
        const Vec<T> dx = dl * load(gamma_c + j, n);
        return std::pair<Vec<T>, Vec<T>>{dx, dx * load(xc_t + r + j, n)};
      });
      const T inv_c = rc_t[b];
      const T mean1 = s1 / T(H), mean2 = s2 / T(H);
      lanes<T>(H, [&](int64_t j, int64_t n) {
        const T* gg = g_t + r4 + j;
        const Vec<T> i = load(gg, n), f = load(gg + H, n), g = load(gg + 2 * H, n), o = load(gg + 3 * H, n);
        const Vec<T> dhn = load(dh + r + j, n) + load(dout_t + r + j, n);
        const Vec<T> dx = load(dl_t + r + j, n) * load(gamma_c + j, n);
        const Vec<T> dc_norm = Vec<T>(inv_c) * (dx - Vec<T>(mean1) - load(xc_t + r + j, n) * Vec<T>(mean2));
        const Vec<T> dct = load(dc + r + j, n) + dc_norm;  // c_t feeds LN(c_t) and c_{t+1}
        T* da = da_t + r4 + j;
        (dct * g * i * (one - i)).store(da, n);
        (dct * load(c_prev + r + j, n) * f * (one - f)).store(da + H, n);
        (dct * i * (one - g * g)).store(da + 2 * H, n);
        (dhn * load(tc_t + r + j, n) * o * (one - o)).store(da + 3 * H, n);
        (dct * f).store(dc + r + j, n);
        Vec<T>(0).store(dp + r + j, n);
      });
      // through a = ... + gamma_h LN(hw): dL/dhw
      const auto [s3, s4] = row_sums<T>(G, [&](int64_t j, int64_t n) {
        const Vec<T> dx = load(da_t + r4 + j, n) * load(gamma_h + j, n);
        return std::pair<Vec<T>, Vec<T>>{dx, dx * load(xh_t + r4 + j, n)};
      });
      const T inv_h = rh_t[b];
      const T mean3 = s3 / T(G), mean4 = s4 / T(G);
      lanes<T>(G, [&](int64_t j, int64_t n) {
        const Vec<T> da = load(da_t + r4 + j, n), xh = load(xh_t + r4 + j, n);
        const Vec<T> dx = da * load(gamma_h + j, n);
        (Vec<T>(inv_h) * (dx - Vec<T>(mean3) - xh * Vec<T>(mean4))).store(dhw_t + r4 + j, n);
        at::vec::fmadd(da, xh, load(gh + j, n)).store(gh + j, n);
        (load(gh + G + j, n) + da).store(gh + G + j, n);
      });
    });
    d_h = gemm(d_hw.select(0, t), std::nullopt, d_prev);
  }
  d_norm = acc.sum(0);
}

// -> (dL/da (T, B, 4H) = dL/dxw, dL/dhw (T, B, 4H), dL/d(gamma_h, b_hh, gamma_c, beta_c) (10H), dL/dh_0, dL/dc_0)
std::vector<Tensor> lnlstm_backward(const Tensor& d_out, const Tensor& d_hT, const Tensor& d_cT, const Tensor& w_hh,
                                    const Tensor& norm, const std::optional<Tensor>& mask, bool onednn, const Tensor& cs,
                                    const Tensor& gates, const Tensor& xhat_h, const Tensor& rstd_h, const Tensor& xhat_c,
                                    const Tensor& rstd_c, const Tensor& tanh_c) {
  Tensor d_a = Pool::empty(gates.sizes(), gates.options()), d_hw = Pool::empty(gates.sizes(), gates.options());
  Tensor d_norm, d_h = d_hT.clone(), d_c = d_cT.clone();
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "rnnlab_lnlstm_backward", [&] {
    lnlstm_backward_impl<scalar_t>(d_out.contiguous(), w_hh, norm.contiguous(), mask, onednn, cs, gates, xhat_h, rstd_h,
                                   xhat_c, rstd_c, tanh_c, d_a, d_hw, d_norm, d_h, d_c);
  });
  return {d_a, d_hw, d_norm, d_h, d_c};
}

// ------------------------------------------------------------------------------------------ GRU

template <typename T>
void gru_forward_impl(const Tensor& xw, const Tensor& w_hh, const std::optional<Tensor>& b_hh,
                      const std::optional<Tensor>& mask, bool onednn, Tensor& hs, Tensor& gates, Tensor& h_n,
                      Tensor& out) {
  const int64_t steps = xw.size(0), B = xw.size(1), H = hs.size(2);
  Gemm gemm(w_hh, B, onednn);
  const Tensor none = at::zeros({B, 3 * H}, xw.options());
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  for (int64_t t = 0; t < steps; ++t) {
    const Tensor hw = gemm(hs.select(0, t), b_hh, none);  // (B, 3H) = W_hh h + b_hh
    const T* x_t = xw.const_data_ptr<T>() + t * B * 3 * H;
    const T* a_t = hw.const_data_ptr<T>();
    const T* h_prev = hs.const_data_ptr<T>() + t * B * H;
    T* h_new = hs.data_ptr<T>() + (t + 1) * B * H;
    T* g_t = gates.data_ptr<T>() + t * B * 3 * H;
    T* hn_t = h_n.data_ptr<T>() + t * B * H;
    T* o_t = out.data_ptr<T>() + t * B * H;
    rows(B, 3 * H, [&](int64_t b) {
      const int64_t r = b * H, r3 = b * 3 * H;
      if (m != nullptr && m[t * B + b] == T(0)) {
        std::copy(h_prev + r, h_prev + r + H, h_new + r);
        std::fill(o_t + r, o_t + r + H, T(0));
        return;
      }
      lanes<T>(H, [&](int64_t j, int64_t n) {
        const T* x = x_t + r3 + j;
        const T* a = a_t + r3 + j;
        const Vec<T> rr = sigmoid(load(x, n) + load(a, n));
        const Vec<T> z = sigmoid(load(x + H, n) + load(a + H, n));
        const Vec<T> hn = load(a + 2 * H, n);
        const Vec<T> nn = (load(x + 2 * H, n) + rr * hn).tanh();
        const Vec<T> hp = load(h_prev + r + j, n);
        const Vec<T> h = nn + z * (hp - nn);
        T* gg = g_t + r3 + j;
        rr.store(gg, n);
        z.store(gg + H, n);
        nn.store(gg + 2 * H, n);
        hn.store(hn_t + r + j, n);
        h.store(h_new + r + j, n);
        h.store(o_t + r + j, n);
      });
    });
  }
}

// -> (out (T, B, H), hs (T+1, B, H), gates (T, B, 3H) = r, z, n, hw_n (T, B, H) = W_hn h_{t-1} + b_hn)
std::tuple<Tensor, Tensor, Tensor, Tensor> gru_forward(const Tensor& xw, const Tensor& h0, const Tensor& w_hh,
                                                       const std::optional<Tensor>& b_hh,
                                                       const std::optional<Tensor>& mask, bool onednn) {
  check(xw, h0, w_hh, 3);
  const int64_t steps = xw.size(0), B = xw.size(1), H = h0.size(1);
  Tensor hs = Pool::empty({steps + 1, B, H}, xw.options());
  hs.select(0, 0).copy_(h0);
  Tensor gates = Pool::empty({steps, B, 3 * H}, xw.options()), h_n = Pool::empty({steps, B, H}, xw.options());
  Tensor out = Pool::empty({steps, B, H}, xw.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_gru_forward", [&] {
    gru_forward_impl<scalar_t>(xw, w_hh, b_hh, mask, onednn, hs, gates, h_n, out);
  });
  return {out, hs, gates, h_n};
}

template <typename T>
void gru_backward_impl(const Tensor& d_out, const Tensor& w_hh, const std::optional<Tensor>& mask, bool onednn,
                       const Tensor& hs, const Tensor& gates, const Tensor& h_n, Tensor& d_xw, Tensor& d_hw, Tensor& d_h) {
  const int64_t steps = d_out.size(0), B = d_out.size(1), H = d_h.size(1);
  Gemm gemm(w_hh.t().contiguous(), B, onednn);  // (H, 3H)
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  Tensor d_prev = at::empty_like(d_h);
  const Vec<T> one(1);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* dout_t = d_out.const_data_ptr<T>() + t * B * H;
    const T* g_t = gates.const_data_ptr<T>() + t * B * 3 * H;
    const T* hn_t = h_n.const_data_ptr<T>() + t * B * H;
    const T* h_prev = hs.const_data_ptr<T>() + t * B * H;
    T* dx_t = d_xw.data_ptr<T>() + t * B * 3 * H;
    T* dw_t = d_hw.data_ptr<T>() + t * B * 3 * H;
    const T* dh = d_h.const_data_ptr<T>();
    T* dp = d_prev.data_ptr<T>();
    rows(B, 6 * H, [&](int64_t b) {
      const int64_t r = b * H, r3 = b * 3 * H;
      if (m != nullptr && m[t * B + b] == T(0)) {
        std::fill(dx_t + r3, dx_t + r3 + 3 * H, T(0));
        std::fill(dw_t + r3, dw_t + r3 + 3 * H, T(0));
        std::copy(dh + r, dh + r + H, dp + r);
        return;
      }
      lanes<T>(H, [&](int64_t j, int64_t n) {
        const T* gg = g_t + r3 + j;
        const Vec<T> rr = load(gg, n), z = load(gg + H, n), nn = load(gg + 2 * H, n);
        const Vec<T> hn = load(hn_t + r + j, n), hp = load(h_prev + r + j, n);
        const Vec<T> dhn = load(dh + r + j, n) + load(dout_t + r + j, n);
        const Vec<T> d_an = dhn * (one - z) * (one - nn * nn);  // through n = tanh(...)
        const Vec<T> d_ar = d_an * hn * rr * (one - rr);
        const Vec<T> d_az = dhn * (hp - nn) * z * (one - z);
        T* dx = dx_t + r3 + j;
        T* dw = dw_t + r3 + j;
        d_ar.store(dx, n);
        d_az.store(dx + H, n);
        d_an.store(dx + 2 * H, n);
        d_ar.store(dw, n);
        d_az.store(dw + H, n);
        (d_an * rr).store(dw + 2 * H, n);  // r multiplies W_hn h + b_hn
        (dhn * z).store(dp + r + j, n);
      });
    });
    d_h = gemm(d_hw.select(0, t), std::nullopt, d_prev);
  }
}

// -> (dL/dxw (T, B, 3H), dL/dhw (T, B, 3H), dL/dh_0)
std::tuple<Tensor, Tensor, Tensor> gru_backward(const Tensor& d_out, const Tensor& d_hT, const Tensor& w_hh,
                                                const std::optional<Tensor>& mask, bool onednn, const Tensor& hs,
                                                const Tensor& gates, const Tensor& h_n) {
  Tensor d_xw = Pool::empty(gates.sizes(), gates.options()), d_hw = Pool::empty(gates.sizes(), gates.options());
  Tensor d_h = d_hT.clone();
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "rnnlab_gru_backward", [&] {
    gru_backward_impl<scalar_t>(d_out.contiguous(), w_hh, mask, onednn, hs, gates, h_n, d_xw, d_hw, d_h);
  });
  return {d_xw, d_hw, d_h};
}

// ------------------------------------------------------------------------------------------ RNN

template <typename T>
void rnn_forward_impl(const Tensor& xw, const Tensor& w_hh, const std::optional<Tensor>& b_hh,
                      const std::optional<Tensor>& mask, bool relu, bool onednn, Tensor& hs, Tensor& out) {
  const int64_t steps = xw.size(0), B = xw.size(1), H = hs.size(2);
  Gemm gemm(w_hh, B, onednn);
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  for (int64_t t = 0; t < steps; ++t) {
    const Tensor pre = gemm(hs.select(0, t), b_hh, xw.select(0, t));  // (B, H) = xw_t + W_hh h + b_hh
    const T* a_t = pre.const_data_ptr<T>();
    const T* h_prev = hs.const_data_ptr<T>() + t * B * H;
    T* h_new = hs.data_ptr<T>() + (t + 1) * B * H;
    T* o_t = out.data_ptr<T>() + t * B * H;
    rows(B, H, [&](int64_t b) {
      const int64_t r = b * H;
      if (m != nullptr && m[t * B + b] == T(0)) {
        std::copy(h_prev + r, h_prev + r + H, h_new + r);
        std::fill(o_t + r, o_t + r + H, T(0));
        return;
      }
      lanes<T>(H, [&](int64_t j, int64_t n) {
        const Vec<T> pre = load(a_t + r + j, n);
        const Vec<T> h = relu ? at::vec::maximum(pre, Vec<T>(0)) : pre.tanh();
        h.store(h_new + r + j, n);
        h.store(o_t + r + j, n);
      });
    });
  }
}

// -> (out (T, B, H), hs (T+1, B, H))
std::tuple<Tensor, Tensor> rnn_forward(const Tensor& xw, const Tensor& h0, const Tensor& w_hh,
                                       const std::optional<Tensor>& b_hh, const std::optional<Tensor>& mask, bool relu,
                                       bool onednn) {
  check(xw, h0, w_hh, 1);
  const int64_t steps = xw.size(0), B = xw.size(1), H = h0.size(1);
  Tensor hs = Pool::empty({steps + 1, B, H}, xw.options());
  hs.select(0, 0).copy_(h0);
  Tensor out = Pool::empty({steps, B, H}, xw.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_rnn_forward", [&] {
    rnn_forward_impl<scalar_t>(xw, w_hh, b_hh, mask, relu, onednn, hs, out);
  });
  return {out, hs};
}

template <typename T>
void rnn_backward_impl(const Tensor& d_out, const Tensor& w_hh, const std::optional<Tensor>& mask, const Tensor& hs,
                       bool relu, bool onednn, Tensor& d_pre, Tensor& d_h) {
  const int64_t steps = d_out.size(0), B = d_out.size(1), H = d_h.size(1);
  Gemm gemm(w_hh.t().contiguous(), B, onednn);
  const T* m = mask.has_value() ? mask->const_data_ptr<T>() : nullptr;
  Tensor d_prev = at::empty_like(d_h);
  const Vec<T> one(1), zero(0);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* dout_t = d_out.const_data_ptr<T>() + t * B * H;
    const T* h_t = hs.const_data_ptr<T>() + (t + 1) * B * H;
    T* dpre_t = d_pre.data_ptr<T>() + t * B * H;
    const T* dh = d_h.const_data_ptr<T>();
    T* dp = d_prev.data_ptr<T>();
    rows(B, 2 * H, [&](int64_t b) {
      const int64_t r = b * H;
      if (m != nullptr && m[t * B + b] == T(0)) {
        std::fill(dpre_t + r, dpre_t + r + H, T(0));
        std::copy(dh + r, dh + r + H, dp + r);
        return;
      }
      lanes<T>(H, [&](int64_t j, int64_t n) {
        const Vec<T> h = load(h_t + r + j, n);
        const Vec<T> dhn = load(dh + r + j, n) + load(dout_t + r + j, n);
        const Vec<T> slope = relu ? ((h > zero) & one) : one - h * h;
        (dhn * slope).store(dpre_t + r + j, n);
        zero.store(dp + r + j, n);
      });
    });
    d_h = gemm(d_pre.select(0, t), std::nullopt, d_prev);
  }
}

// -> (dL/d(pre-activation) (T, B, H): dL/dxw and dL/dhw alike, dL/dh_0)
std::tuple<Tensor, Tensor> rnn_backward(const Tensor& d_out, const Tensor& d_hT, const Tensor& w_hh,
                                        const std::optional<Tensor>& mask, const Tensor& hs, bool relu, bool onednn) {
  Tensor d_pre = Pool::empty({d_out.size(0), d_out.size(1), d_hT.size(1)}, d_out.options()), d_h = d_hT.clone();
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "rnnlab_rnn_backward", [&] {
    rnn_backward_impl<scalar_t>(d_out.contiguous(), w_hh, mask, hs, relu, onednn, d_pre, d_h);
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

// ------------------------------------------------------------------------------- blocked transpose
// (R, C) -> (C, R), in tiles that stay in cache both ways: the weight gradients' operands, with the
// summed dimension (steps x batch) contiguous, as oneDNN's matrix product wants them.

template <typename T>
void transpose_impl(const T* src, T* dst, int64_t R, int64_t C) {
  constexpr int64_t kTile = 32;
  const int64_t row_tiles = (R + kTile - 1) / kTile;
  at::parallel_for(0, row_tiles, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t rt = lo; rt < hi; ++rt) {
      const int64_t r0 = rt * kTile, r1 = std::min(R, r0 + kTile);
      for (int64_t c0 = 0; c0 < C; c0 += kTile) {
        const int64_t c1 = std::min(C, c0 + kTile);
        for (int64_t c = c0; c < c1; ++c) {
          for (int64_t r = r0; r < r1; ++r) dst[c * R + r] = src[r * C + c];
        }
      }
    }
  });
}

Tensor transpose(const Tensor& src) {
  TORCH_CHECK(src.dim() == 2, "rnnlab native: transpose takes a matrix");
  const Tensor s = src.contiguous();
  Tensor dst = Pool::empty({s.size(1), s.size(0)}, s.options());
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "rnnlab_transpose", [&] {
    transpose_impl<scalar_t>(s.const_data_ptr<scalar_t>(), dst.data_ptr<scalar_t>(), s.size(0), s.size(1));
  });
  return dst;
}

}  // namespace

TORCH_LIBRARY(rnnlab_native, m) {
  m.def("lstm_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, Tensor? b_hh, Tensor? peep, Tensor? mask, bool onednn)"
        " -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("lstm_backward(Tensor d_out, Tensor d_hT, Tensor d_cT, Tensor w_hh, Tensor? peep, Tensor? mask, bool onednn, Tensor cs,"
        " Tensor gates, Tensor tanh_c) -> (Tensor, Tensor, Tensor)");
  m.def("lnlstm_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, Tensor norm, float eps, Tensor? mask, bool onednn)"
        " -> Tensor[]");
  m.def("lnlstm_backward(Tensor d_out, Tensor d_hT, Tensor d_cT, Tensor w_hh, Tensor norm, Tensor? mask, bool onednn,"
        " Tensor cs, Tensor gates, Tensor xhat_h, Tensor rstd_h, Tensor xhat_c, Tensor rstd_c, Tensor tanh_c) -> Tensor[]");
  m.def("gru_forward(Tensor xw, Tensor h0, Tensor w_hh, Tensor? b_hh, Tensor? mask, bool onednn)"
        " -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("gru_backward(Tensor d_out, Tensor d_hT, Tensor w_hh, Tensor? mask, bool onednn, Tensor hs, Tensor gates,"
        " Tensor h_n)"
        " -> (Tensor, Tensor, Tensor)");
  m.def("scan_forward(Tensor a, Tensor b, Tensor h0) -> Tensor");
  m.def("scan_backward(Tensor d_out, Tensor a, Tensor out, Tensor h0) -> (Tensor, Tensor, Tensor)");
  m.def("minimal_forward(Tensor xw, Tensor h0, Tensor? mask, bool lstm) -> Tensor");
  m.def("minimal_backward(Tensor d_out, Tensor xw, Tensor out, Tensor h0, Tensor? mask, bool lstm) -> (Tensor, Tensor)");
  m.def("transpose(Tensor src) -> Tensor");
  m.def("rnn_forward(Tensor xw, Tensor h0, Tensor w_hh, Tensor? b_hh, Tensor? mask, bool relu, bool onednn)"
        " -> (Tensor, Tensor)");
  m.def("rnn_backward(Tensor d_out, Tensor d_hT, Tensor w_hh, Tensor? mask, Tensor hs, bool relu, bool onednn)"
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
  m.impl("transpose", &transpose);
  m.impl("rnn_forward", &rnn_forward);
  m.impl("rnn_backward", &rnn_backward);
}
