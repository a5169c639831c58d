using TorchSharp;

namespace MaeMl.Model;

/// <summary>
/// Cached <see cref="Scalar"/> constants for hot paths. TorchSharp 0.107 turns <c>a + b</c> into <c>add(b, alpha: 1)</c> and
/// <c>x + 1e-6</c> into <c>add(1e-6)</c> with a temporary <see cref="Scalar"/> whose native handle goes to LibTorch with no
/// <c>GC.KeepAlive</c>; a collection on another thread can finalize it mid-call ("Expected false to be true"). These live
/// in static fields, so they are never collected; use <c>a.add(b, Scalars.One)</c> instead of <c>a + b</c>.
/// </summary>
internal static class Scalars
{
    /// <summary>1, the alpha of a plain sum or difference.</summary>
    public static readonly Scalar One = 1.ToScalar();

    /// <summary>2, the exponent of a square (TorchSharp's <c>square()</c> is <c>pow(2)</c> with a temporary Scalar).</summary>
    public static readonly Scalar Two = 2.ToScalar();

    /// <summary>1e-6, the variance epsilon of the normalised-pixel target.</summary>
    public static readonly Scalar NormPixEps = 1e-6.ToScalar();
}
