using MaeMl.MLNet;
using Xunit;

namespace MaeMl.Tests.MLNet;

/// <summary>A GPU is requested from ML.NET / ONNX Runtime only when the loaded native build has the CUDA provider; otherwise the
/// CPU is used (fallback) or one clear error is thrown.</summary>
public sealed class OnnxDeviceTests
{
    [Fact]
    public void FallsBackOrExplainsWhenTheNativeBuildHasNoCuda()
    {
        var warnings = new List<string>();
        string[] cpuOnly = ["CPUExecutionProvider"];
        Assert.Null(OnnxDevice.Resolve(0, fallbackToCpu: true, cpuOnly, warnings.Add));
        Assert.Contains("Microsoft.ML.OnnxRuntime.Gpu", Assert.Single(warnings));
        var e = Assert.Throws<InvalidOperationException>(() => OnnxDevice.Resolve(0, fallbackToCpu: false, cpuOnly));
        Assert.Contains("no CUDA execution provider", e.Message);
        Assert.Equal(1, OnnxDevice.Resolve(1, fallbackToCpu: false, ["CUDAExecutionProvider", "CPUExecutionProvider"]));
        Assert.Null(OnnxDevice.Resolve(null, fallbackToCpu: false, cpuOnly));
        Assert.Throws<ArgumentOutOfRangeException>(() => OnnxDevice.Resolve(-1, fallbackToCpu: true, cpuOnly));
        Assert.Contains("CPUExecutionProvider", OnnxDevice.AvailableProviders());
    }
}
