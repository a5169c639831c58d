using Microsoft.ML.OnnxRuntime;

namespace MaeMl.MLNet;

/// <summary>
/// Decides where an ONNX model runs before ML.NET or ONNX Runtime is asked to use CUDA. With the CPU native package
/// (<c>Microsoft.ML.OnnxRuntime</c>) the CUDA entry point does not exist, and ML.NET's own <c>fallbackToCpu</c> does not catch
/// the <see cref="EntryPointNotFoundException"/> that follows, so every estimator and <see cref="MaeEncoder"/> resolve the
/// device here first: a GPU is only requested when the loaded ONNX Runtime build offers the CUDA execution provider.
/// </summary>
internal static class OnnxDevice
{
    const string Cuda = "CUDAExecutionProvider";

    /// <summary>The execution providers of the loaded ONNX Runtime native library (empty when it cannot be loaded).</summary>
    internal static IReadOnlyList<string> AvailableProviders()
    {
        try { return OrtEnv.Instance().GetAvailableProviders(); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or TypeInitializationException or OnnxRuntimeException) { return []; }
    }

    /// <summary>The GPU device to hand to ML.NET / ONNX Runtime: <paramref name="gpuDeviceId"/> when the CUDA provider exists, null (CPU)
    /// when it does not and <paramref name="fallbackToCpu"/> is set (with a warning through <paramref name="warn"/>).</summary>
    /// <exception cref="InvalidOperationException">A GPU was asked for without fallback and this ONNX Runtime build has no CUDA provider.</exception>
    internal static int? Resolve(int? gpuDeviceId, bool fallbackToCpu, Action<string>? warn = null) =>
        Resolve(gpuDeviceId, fallbackToCpu, AvailableProviders(), warn);

    /// <summary><see cref="Resolve(int?, bool, Action{string}?)"/> for a given list of providers (testable without a GPU build).</summary>
    internal static int? Resolve(int? gpuDeviceId, bool fallbackToCpu, IReadOnlyList<string> providers, Action<string>? warn = null)
    {
        if (gpuDeviceId is not int device) return null;
        if (device < 0) throw new ArgumentOutOfRangeException(nameof(gpuDeviceId), device, "The GPU device id must be 0 or more (null for the CPU)");
        if (providers.Contains(Cuda)) return device;
        var message = $"GPU {device} was asked for, but the ONNX Runtime native library in use has no CUDA execution provider " +
                      $"(it offers {(providers.Count == 0 ? "none" : string.Join(", ", providers))}); reference Microsoft.ML.OnnxRuntime.Gpu " +
                      "instead of Microsoft.ML.OnnxRuntime (never both)";
        if (!fallbackToCpu) throw new InvalidOperationException(message);
        warn?.Invoke($"warning: {message}. Running on the CPU.");
        return null;
    }
}
