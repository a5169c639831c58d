using System.Numerics;
using System.Runtime.CompilerServices;
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
        p.numel() <= int.MaxValue && Dense(p, ScalarType.Float32, p.numel()) && Dense(g, ScalarType.Float32, p.numel())
        && Dense(m, ScalarType.Float32, p.numel()) && Dense(v, ScalarType.Float32, p.numel());

    /// <summary>True when <paramref name="p"/>, <paramref name="m"/>, <paramref name="v"/> are contiguous float32 CPU tensors and the working copy
    /// <paramref name="work"/> and its gradient <paramref name="g"/> contiguous bfloat16 CPU tensors, all of the same size.</summary>
    public static bool AppliesMixed(Tensor p, Tensor g, Tensor m, Tensor v, Tensor work) =>
        p.numel() <= int.MaxValue && Dense(p, ScalarType.Float32, p.numel()) && Dense(m, ScalarType.Float32, p.numel()) && Dense(v, ScalarType.Float32, p.numel())
        && Dense(g, ScalarType.BFloat16, p.numel()) && Dense(work, ScalarType.BFloat16, p.numel());

    static bool Dense(Tensor t, ScalarType dtype, long numel) =>
        t.device_type == DeviceType.CPU && t.dtype == dtype && t.is_contiguous() && t.numel() == numel;

    /// <summary>One AdamW update of <paramref name="p"/> in place (see the class); <paramref name="stepSize"/> is negative.</summary>
    public static unsafe void Step(Tensor p, Tensor g, Tensor m, Tensor v, float decay, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsScaled, float stepSize)
    {
        if (p.numel() == 0) return;
        float* pp = Pointer(p), gp = Pointer(g), mp = Pointer(m), vp = Pointer(v);
        var k = new Coefficients(decay, oneMinusBeta1, beta2, oneMinusBeta2, epsScaled, stepSize);
        InChunks((int)p.numel(), (start, end) => Update(pp, gp, mp, vp, start, end, k));
        GC.KeepAlive(p); GC.KeepAlive(g); GC.KeepAlive(m); GC.KeepAlive(v);
    }

    /// <summary>The mixed-precision form of <see cref="Step"/>, in the same pass: the gradient is read from the bfloat16 working copy's
    /// gradient <paramref name="g"/> (widened exactly, as <c>to_type(Float32)</c> does) and zeroed there, and the updated float32 weight is
    /// also written, rounded to nearest even (NaN to 0x7FC0, as LibTorch's <c>copy_</c>), into the working copy <paramref name="work"/>.
    /// Master weights, moments and working copy end bit-identical to pushing the gradient into a float32 one, <see cref="Step"/>, and
    /// pulling the weights back, with 30 bytes of memory traffic per parameter instead of 42 (and no float32 gradient).</summary>
    public static unsafe void StepMixed(Tensor p, Tensor g, Tensor m, Tensor v, Tensor work, float decay, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsScaled, float stepSize)
    {
        if (p.numel() == 0) return;
        float* pp = Pointer(p), mp = Pointer(m), vp = Pointer(v);
        ushort* gp = (ushort*)RawPointer(g), wp = (ushort*)RawPointer(work);
        var k = new Coefficients(decay, oneMinusBeta1, beta2, oneMinusBeta2, epsScaled, stepSize);
        InChunks((int)p.numel(), (start, end) => UpdateMixed(pp, gp, mp, vp, wp, start, end, k));
        GC.KeepAlive(p); GC.KeepAlive(g); GC.KeepAlive(m); GC.KeepAlive(v); GC.KeepAlive(work);
    }

    /// <summary>Runs <paramref name="update"/> over [0, n): on this thread below <see cref="ParallelThreshold"/>, else in
    /// <see cref="Chunk"/>-sized pieces over the cores.</summary>
    static void InChunks(int n, Action<int, int> update)
    {
        if (n < ParallelThreshold) { update(0, n); return; }
        Parallel.For(0, (n + Chunk - 1) / Chunk, c => { int start = c * Chunk; update(start, Math.Min(n, start + Chunk)); });
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

    readonly record struct Coefficients(float Decay, float W1, float B2, float OneMinusB2, float Eps, float StepSize);

    /// <summary><see cref="Coefficients"/> broadcast to vector lanes.</summary>
    readonly struct VectorCoefficients(Coefficients k)
    {
        public readonly Vector<float> Decay = new(k.Decay), W1 = new(k.W1), B2 = new(k.B2), OneMinusB2 = new(k.OneMinusB2), Eps = new(k.Eps), StepSize = new(k.StepSize);
    }

    /// <summary>The update of the <see cref="Vector{T}.Count"/> elements at <paramref name="i"/> with gradient <paramref name="g"/>
    /// (both kernels take this one, so they compute the same bits); returns the new weights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe Vector<float> UpdateLanes(float* p, float* m, float* v, int i, Vector<float> g, in VectorCoefficients c)
    {
        var mi = Vector.Load(m + i);
        mi += c.W1 * (g - mi);
        var vi = c.B2 * Vector.Load(v + i) + c.OneMinusB2 * (g * g);
        var pi = Vector.Load(p + i) * c.Decay + c.StepSize * (mi / (Vector.SquareRoot(vi) + c.Eps));
        mi.Store(m + i); vi.Store(v + i); pi.Store(p + i);
        return pi;
    }

    /// <summary>The same update of the one element at <paramref name="i"/> (the tail after the vector loop); returns the new weight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe float UpdateOne(float* p, float* m, float* v, int i, float g, Coefficients k)
    {
        float mi = m[i] + k.W1 * (g - m[i]), vi = k.B2 * v[i] + k.OneMinusB2 * (g * g);
        m[i] = mi; v[i] = vi;
        return p[i] = p[i] * k.Decay + k.StepSize * (mi / (MathF.Sqrt(vi) + k.Eps));
    }

    static unsafe void Update(float* p, float* g, float* m, float* v, int start, int end, Coefficients k)
    {
        int i = start, width = Vector<float>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            var c = new VectorCoefficients(k);
            for (; i <= end - width; i += width) UpdateLanes(p, m, v, i, Vector.Load(g + i), c);
        }
        for (; i < end; i++) UpdateOne(p, m, v, i, g[i], k);
    }

    static unsafe void UpdateMixed(float* p, ushort* g, float* m, float* v, ushort* w, int start, int end, Coefficients k)
    {
        int i = start, width = Vector<ushort>.Count, half = Vector<float>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            var c = new VectorCoefficients(k);
            for (; i <= end - width; i += width)
            {
                Vector.Widen(Vector.Load(g + i), out Vector<uint> gLow, out Vector<uint> gHigh);   // bfloat16 -> float32 is a 16-bit shift
                Vector.Store(Vector<ushort>.Zero, g + i);
                var low = ToBFloat16Bits(UpdateLanes(p, m, v, i, Vector.AsVectorSingle(gLow << 16), c));
                var high = ToBFloat16Bits(UpdateLanes(p, m, v, i + half, Vector.AsVectorSingle(gHigh << 16), c));
                Vector.Store(Vector.Narrow(low, high), w + i);
            }
        }
        for (; i < end; i++)
        {
            float gi = BitConverter.UInt32BitsToSingle((uint)g[i] << 16);
            g[i] = 0;
            w[i] = ToBFloat16(UpdateOne(p, m, v, i, gi, k));
        }
    }
}
