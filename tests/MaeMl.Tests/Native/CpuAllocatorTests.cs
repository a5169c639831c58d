using System.Runtime.InteropServices;
using MaeMl.Native;
using TorchSharp;
using Xunit;

namespace MaeMl.Tests.Native;

public class CpuAllocatorTests
{
    [DllImport("libc", EntryPoint = "getenv")] static extern IntPtr GetEnv(string name);

    [Fact]
    public void LoadingMaeMlConfiguresTheHeapAndLibTorchsHugePagesBeforeTheFirstTensor()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("MAEML_CPU_ALLOCATOR") == "default") return;
        using var t = torch.zeros(1 << 20);   // any MaeMl use runs the module initializer; this test's assembly references MaeMl
        _ = MaeMl.Model.MaePresets.MaeVitTinyPatch4Img32Dec128d2b;
        // the native environment (what LibTorch's getenv sees), whoever set it
        var thp = GetEnv("THP_MEM_ALLOC_ENABLE");
        Assert.NotEqual(IntPtr.Zero, thp);
        // .NET's Environment is the snapshot taken at start: null there means the variable came from CpuAllocator
        if (Environment.GetEnvironmentVariable("THP_MEM_ALLOC_ENABLE") is null) Assert.Equal("1", Marshal.PtrToStringAnsi(thp));
        if (Environment.GetEnvironmentVariable("MALLOC_TRIM_THRESHOLD_") is null)
            Assert.Contains("trim threshold 2 GiB", CpuAllocator.Settings);
        CpuAllocator.Configure();   // idempotent
        Assert.Equal(t.numel(), 1 << 20);
    }
}
