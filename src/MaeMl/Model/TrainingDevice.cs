using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>
/// Where a run trains: <c>cpu</c> (default), <c>cuda</c> or <c>cuda:N</c>. The model, the optimizer state, every batch and the
/// masking noise live there; decoding and augmentation stay on CPU threads; checkpoints are device-independent (weights are
/// written from, and read into, whatever device the model is on). CUDA needs a CUDA build of LibTorch, which MaeMl does not
/// reference (it references TorchSharp-cpu): an application references TorchSharp-cuda-linux or TorchSharp-cuda-windows instead.
/// CUDA training is written device-generic but has not been run on a GPU by MaeMl's own tests (no CUDA LibTorch on its machines).
/// </summary>
internal static class TrainingDevice
{
    /// <summary>The packages that carry a CUDA LibTorch.</summary>
    public const string CudaPackages = "TorchSharp-cuda-linux or TorchSharp-cuda-windows";

    /// <summary>The device <paramref name="spec"/> names (null or empty: the CPU).</summary>
    /// <exception cref="ArgumentException">An unknown device, a bad index, or CUDA asked of a LibTorch without it (one line naming the package to reference).</exception>
    public static Device Resolve(string? spec)
    {
        var s = (spec ?? "").Trim().ToLowerInvariant();
        if (s is "" or "cpu") return CPU;
        if (s != "cuda" && !s.StartsWith("cuda:")) throw new ArgumentException($"unknown device '{spec}' (use cpu, cuda or cuda:N)");
        int index = 0;
        if (s.Length > 4 && (!int.TryParse(s.AsSpan(5), out index) || index < 0))
            throw new ArgumentException($"device '{spec}': expected cuda or cuda:N with N a GPU index");
        if (!cuda.is_available())
            throw new ArgumentException($"device '{spec}': the LibTorch loaded here has no CUDA (MaeMl references TorchSharp-cpu); " +
                                        $"reference {CudaPackages} instead of TorchSharp-cpu to train on a GPU");
        int count = cuda.device_count();
        if (index >= count) throw new ArgumentException($"device '{spec}': there {(count == 1 ? "is 1 GPU" : $"are {count} GPUs")} (cuda:0..cuda:{count - 1})");
        return new Device(DeviceType.CUDA, index);
    }

    /// <summary><paramref name="t"/> itself when it is on <paramref name="device"/> already, else a copy there.</summary>
    public static Tensor On(this Tensor t, Device device) =>
        t.device_type == device.type && (device.type == DeviceType.CPU || t.device_index == device.index) ? t : t.to(device);

    /// <summary>The device of a module's first parameter (the CPU for a module without parameters).</summary>
    public static Device Of(nn.Module module) => module.parameters().FirstOrDefault()?.device ?? CPU;
}
