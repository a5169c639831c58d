using System.Numerics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>
/// The AdamW update of one float32 CPU parameter in one pass over its memory: reads p, g, m, v once and writes p, m, v once
/// (7 array passes), where the same update as LibTorch kernels (<c>mul_</c>, <c>lerp_</c>, <c>mul_</c>, <c>addcmul_</c>, <c>sqrt</c>,
/// <c>add_</c>, <c>addcdiv_</c>) reads and writes 18 and allocates the denominator. The update is bound by memory bandwidth
/// (at ViT-L, 330 M parameters, it is 1.3 GB per array), so this is what an optimizer step costs there. SIMD over
/// <see cref="Vector{T}"/>, split over the cores for large tensors. Per element, in the order of <see cref="AdamW"/>:
/// <c>p *= decay; m += w1 (g - m); v = b2 v + (1 - b2) g g; p += step m / (sqrt(v) + eps')</c>.
/// Only for contiguous float32 CPU tensors (<see cref="Applies"/>); everything else takes LibTorch's kernels.
/// </summary>
internal static class FusedAdamWCpu
{
    // LibTorchSharp's own export (tensor->data_ptr(), storage offset included); TorchSharp binds it internally only
    [DllImport("LibTorchSharp")] static extern IntPtr THSTensor_data(IntPtr handle);

    /// <summary>Elements below which one thread does the whole tensor (splitting costs more than it saves).</summary>
    const int ParallelThreshold = 1 << 17;
    const int Chunk = 1 << 15;

    /// <summary>False when <c>MAEML_FUSED_ADAMW=0</c>: LibTorch's kernels everywhere (to compare, or should a platform misbehave).</summary>
    internal static readonly bool EnabledByEnvironment = Environment.GetEnvironmentVariable("MAEML_FUSED_ADAMW") != "0";

    /// <summary>True when all four are contiguous float32 CPU tensors of the same size.</summary>
    public static bool Applies(Tensor p, Tensor g, Tensor m, Tensor v) =>
        p.device_type == DeviceType.CPU && g.device_type == DeviceType.CPU && m.device_type == DeviceType.CPU && v.device_type == DeviceType.CPU
        && p.dtype == ScalarType.Float32 && g.dtype == ScalarType.Float32 && m.dtype == ScalarType.Float32 && v.dtype == ScalarType.Float32
        && p.is_contiguous() && g.is_contiguous() && m.is_contiguous() && v.is_contiguous()
        && p.numel() == g.numel() && p.numel() == m.numel() && p.numel() == v.numel() && p.numel() <= int.MaxValue;

    /// <summary>One AdamW update of <paramref name="p"/> in place (see the class); <paramref name="stepSize"/> is negative.</summary>
    public static unsafe void Step(Tensor p, Tensor g, Tensor m, Tensor v, float decay, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsScaled, float stepSize)
    {
        int n = (int)p.numel();
        if (n == 0) return;
        float* pp = Pointer(p), gp = Pointer(g), mp = Pointer(m), vp = Pointer(v);
        var k = new Coefficients(decay, oneMinusBeta1, beta2, oneMinusBeta2, epsScaled, stepSize);
        if (n < ParallelThreshold) Update(pp, gp, mp, vp, 0, n, k);
        else
        {
            int chunks = (n + Chunk - 1) / Chunk;
            Parallel.For(0, chunks, c => { int start = c * Chunk; Update(pp, gp, mp, vp, start, Math.Min(n, start + Chunk), k); });
        }
        GC.KeepAlive(p); GC.KeepAlive(g); GC.KeepAlive(m); GC.KeepAlive(v);
    }

    /// <summary>True when <paramref name="p"/>, <paramref name="m"/>, <paramref name="v"/> are contiguous float32 CPU tensors and the working copy
    /// <paramref name="work"/> and its gradient <paramref name="g"/> contiguous bfloat16 CPU tensors, all of the same size.</summary>
    public static bool AppliesMixed(Tensor p, Tensor g, Tensor m, Tensor v, Tensor work) =>
        p.device_type == DeviceType.CPU && g.device_type == DeviceType.CPU && m.device_type == DeviceType.CPU && v.device_type == DeviceType.CPU && work.device_type == DeviceType.CPU
        && p.dtype == ScalarType.Float32 && m.dtype == ScalarType.Float32 && v.dtype == ScalarType.Float32 && g.dtype == ScalarType.BFloat16 && work.dtype == ScalarType.BFloat16
        && p.is_contiguous() && g.is_contiguous() && m.is_contiguous() && v.is_contiguous() && work.is_contiguous()
        && p.numel() == g.numel() && p.numel() == m.numel() && p.numel() == v.numel() && p.numel() == work.numel() && p.numel() <= int.MaxValue;

    /// <summary>The mixed-precision form of <see cref="Step"/>, in the same pass: the gradient is read from the bfloat16 working copy's
    /// gradient <paramref name="g"/> (widened exactly, as <c>to_type(Float32)</c> does) and zeroed there, and the updated float32 weight is
    /// also written, rounded to nearest even (NaN to 0x7FC0, as LibTorch's <c>copy_</c>), into the working copy <paramref name="work"/>.
    /// Master weights, moments and working copy end bit-identical to pushing the gradient into a float32 one, <see cref="Step"/>, and
    /// pulling the weights back, with 30 bytes of memory traffic per parameter instead of 42 (and no float32 gradient).</summary>
    public static unsafe void StepMixed(Tensor p, Tensor g, Tensor m, Tensor v, Tensor work, float decay, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsScaled, float stepSize)
    {
        int n = (int)p.numel();
        if (n == 0) return;
        float* pp = Pointer(p), mp = Pointer(m), vp = Pointer(v);
        ushort* gp = (ushort*)RawPointer(g), wp = (ushort*)RawPointer(work);
        var k = new Coefficients(decay, oneMinusBeta1, beta2, oneMinusBeta2, epsScaled, stepSize);
        if (n < ParallelThreshold) UpdateMixed(pp, gp, mp, vp, wp, 0, n, k);
        else
        {
            int chunks = (n + Chunk - 1) / Chunk;
            Parallel.For(0, chunks, c => { int start = c * Chunk; UpdateMixed(pp, gp, mp, vp, wp, start, Math.Min(n, start + Chunk), k); });
        }
        GC.KeepAlive(p); GC.KeepAlive(g); GC.KeepAlive(m); GC.KeepAlive(v); GC.KeepAlive(work);
    }

    static unsafe float* Pointer(Tensor t) => (float*)RawPointer(t);

    static unsafe void* RawPointer(Tensor t)
    {
        var ptr = THSTensor_data(t.Handle);
        if (ptr == IntPtr.Zero) torch.CheckForErrors();
        return (void*)ptr;
    }

    /// <summary>float32 -> bfloat16 bits, round to nearest even, NaN -> 0x7FC0 (c10::BFloat16's <c>round_to_nearest_even</c>).</summary>
    static ushort ToBFloat16(float f)
    {
        if (float.IsNaN(f)) return 0x7FC0;
        uint u = BitConverter.SingleToUInt32Bits(f);
        return (ushort)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    }

    static Vector<uint> ToBFloat16Bits(Vector<float> f)
    {
        var u = Vector.AsVectorUInt32(f);
        var rounded = (u + new Vector<uint>(0x7FFFu) + ((u >> 16) & Vector<uint>.One)) >> 16;
        return Vector.ConditionalSelect(Vector.AsVectorUInt32(Vector.Equals(f, f)), rounded, new Vector<uint>(0x7FC0u));
    }

    /// <summary>One float vector of <see cref="UpdateMixed"/> at <paramref name="j"/>, the gradient given as bfloat16 bits widened to 32;
    /// returns the new weights' bfloat16 bits (in the low half of each lane).</summary>
    static unsafe Vector<uint> Lane(float* p, float* m, float* v, int j, Vector<uint> gBits, Vector<float> decay, Vector<float> w1, Vector<float> b2,
                                    Vector<float> omb2, Vector<float> eps, Vector<float> step)
    {
        var gi = Vector.AsVectorSingle(gBits << 16);
        var mi = Vector.Load(m + j);
        mi += w1 * (gi - mi);
        var vi = b2 * Vector.Load(v + j) + omb2 * (gi * gi);
        var pi = Vector.Load(p + j) * decay + step * (mi / (Vector.SquareRoot(vi) + eps));
        mi.Store(m + j); vi.Store(v + j); pi.Store(p + j);
        return ToBFloat16Bits(pi);
    }

    static unsafe void UpdateMixed(float* p, ushort* g, float* m, float* v, ushort* w, int start, int end, Coefficients k)
    {
        int i = start, width = Vector<ushort>.Count, half = Vector<float>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            Vector<float> decay = new(k.Decay), w1 = new(k.W1), b2 = new(k.B2), omb2 = new(k.OneMinusB2), eps = new(k.Eps), step = new(k.StepSize);
            for (; i <= end - width; i += width)
            {
                Vector.Widen(Vector.Load(g + i), out Vector<uint> gLow, out Vector<uint> gHigh);
                Vector.Store(Vector<ushort>.Zero, g + i);
                var low = Lane(p, m, v, i, gLow, decay, w1, b2, omb2, eps, step);
                var high = Lane(p, m, v, i + half, gHigh, decay, w1, b2, omb2, eps, step);
                Vector.Store(Vector.Narrow(low, high), w + i);
            }
        }
        for (; i < end; i++)
        {
            float gi = BitConverter.UInt32BitsToSingle((uint)g[i] << 16);
            g[i] = 0;
            float mi = m[i] + k.W1 * (gi - m[i]), vi = k.B2 * v[i] + k.OneMinusB2 * (gi * gi);
            m[i] = mi; v[i] = vi;
            p[i] = p[i] * k.Decay + k.StepSize * (mi / (MathF.Sqrt(vi) + k.Eps));
            w[i] = ToBFloat16(p[i]);
        }
    }

    readonly record struct Coefficients(float Decay, float W1, float B2, float OneMinusB2, float Eps, float StepSize);

    static unsafe void Update(float* p, float* g, float* m, float* v, int start, int end, Coefficients k)
    {
        int i = start, width = Vector<float>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            Vector<float> decay = new(k.Decay), w1 = new(k.W1), b2 = new(k.B2), omb2 = new(k.OneMinusB2), eps = new(k.Eps), step = new(k.StepSize);
            for (; i <= end - width; i += width)
            {
                var gi = Vector.Load(g + i);
                var mi = Vector.Load(m + i);
                mi += w1 * (gi - mi);
                var vi = b2 * Vector.Load(v + i) + omb2 * (gi * gi);
                var pi = Vector.Load(p + i) * decay + step * (mi / (Vector.SquareRoot(vi) + eps));
                mi.Store(m + i); vi.Store(v + i); pi.Store(p + i);
            }
        }
        for (; i < end; i++)
        {
            float gi = g[i], mi = m[i] + k.W1 * (g[i] - m[i]), vi = k.B2 * v[i] + k.OneMinusB2 * (gi * gi);
            m[i] = mi; v[i] = vi;
            p[i] = p[i] * k.Decay + k.StepSize * (mi / (MathF.Sqrt(vi) + k.Eps));
        }
    }
}
