using MaeMl.Native;
using TorchSharp;
using Xunit;

namespace MaeMl.Tests.Native;

public class TorchSharpLoadTests
{
    [Fact]
    public void TorchSharpLoadsAndComputesInTheTestProcess()
    {
        using var a = torch.ones(3, 4);
        using var b = torch.full(4, 2, 2.0f);
        using var c = a.matmul(b);
        Assert.Equal(new long[] { 3, 2 }, c.shape);
        Assert.Equal(8.0f, c[1, 1].item<float>());
    }

    [Fact]
    public void OutputCopyOfLibTorchSharpNoLongerRequiresGlibcxx3432()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"{path} is missing");
        if (LibTorchSharpElfFix.SystemNeedsFix())
            Assert.False(LibTorchSharpElfFix.RequiresVersion(path));
    }

    [Fact]
    public void PatchIsIdempotentAndTouchesOnlyTheVersionTables()
    {
        var original = FindOriginalLibTorchSharp();
        var bytes = File.ReadAllBytes(original);
        Assert.True(LibTorchSharpElfFix.Rewrite(bytes, out var patched), "the NuGet copy should still carry the requirement");
        Assert.False(LibTorchSharpElfFix.Rewrite(patched!, out _), "a second pass must find nothing to do");
        Assert.Equal(bytes.Length, patched!.Length);
        int differing = 0;
        for (int i = 0; i < bytes.Length; i++) if (bytes[i] != patched[i]) differing++;
        Assert.InRange(differing, 1, 8); // one versym entry, one vna_next/vn_aux link, one vn_cnt

        var tmp = Path.Combine(Path.GetTempPath(), $"maeml-elf-{Guid.NewGuid():N}.so");
        File.WriteAllBytes(tmp, bytes);
        try
        {
            Assert.Equal(LibTorchSharpElfFix.Result.Patched, LibTorchSharpElfFix.Patch(tmp));
            Assert.Equal(LibTorchSharpElfFix.Result.AlreadyClean, LibTorchSharpElfFix.Patch(tmp));
            Assert.Equal(patched, File.ReadAllBytes(tmp));
        }
        finally { File.Delete(tmp); }
    }

    static string FindOriginalLibTorchSharp()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                   ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"{path} is missing");
        return path;
    }
}
