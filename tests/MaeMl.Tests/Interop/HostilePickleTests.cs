using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Interop;
using MaeMl.Model;
using Xunit;

namespace MaeMl.Tests.Interop;

/// <summary>torch.save archives crafted to trick or exhaust the reader (issue 11): refused with a file error, quickly, in bounded memory.</summary>
public class HostilePickleTests
{
    static Exception FileError(Action load)
    {
        var ex = Assert.ThrowsAny<Exception>(load);
        Assert.True(ex is InvalidDataException or IOException, $"expected a file error, got {ex.GetType()}: {ex.Message}");
        return ex;
    }

    static readonly MaeLoadOptions Heads = new() { NumHeads = 2, DecoderNumHeads = 2 };

    static List<(string Name, byte[] Data)> FixtureEntries()
    {
        using var zip = ZipFile.OpenRead(OfficialFixture.PathOf("checkpoint-full.pth"));
        return zip.Entries.Select(e =>
        {
            using var s = e.Open();
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            return (e.FullName, ms.ToArray());
        }).ToList();
    }

    static string Zip(string path, IEnumerable<(string Name, byte[] Data)> entries)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (name, data) in entries)
            using (var w = zip.CreateEntry(name, CompressionLevel.NoCompression).Open()) w.Write(data);
        return path;
    }

    /// <summary>{'model': os.system(...)} (never run).</summary>
    static byte[] EvilPickle() =>
        [0x80, 2, (byte)'}', 0x8c, 5, .. "model"u8, .. "cos\nsystem\n"u8, 0x8c, 4, .. "true"u8, 0x85, (byte)'R', (byte)'s', (byte)'.'];

    [Fact]
    public void AnUnvalidatedPickleBesideDataPklIsRefused()
    {
        var dir = TempDir.Create();
        var entries = FixtureEntries();
        // torch.load reads checkpoint-full/data.pkl; a loader taking "the first name ending in data.pkl" would read xdata.pkl
        var path = Zip(Path.Combine(dir, "two-pickles.pth"), entries.Prepend(("checkpoint-full/xdata.pkl", EvilPickle())));
        var ex = FileError(() => MaeModelFile.ReadStateDict(path));
        Assert.Contains("two-pickles.pth", ex.Message);
        Assert.Contains("xdata.pkl", ex.Message);

        // a storage entry named twice (the second copy would serve different weights), or outside the archive's folder
        var dup = Zip(Path.Combine(dir, "dup.pth"), entries.Prepend(("checkpoint-full/data/1", new byte[4096])));
        Assert.Contains("data/1", FileError(() => MaeModelFile.ReadStateDict(dup)).Message);
        var outside = Zip(Path.Combine(dir, "outside.pth"), entries.Prepend(("evil/data/1", new byte[4096])));
        Assert.Contains("evil/data/1", FileError(() => MaeModelFile.ReadStateDict(outside)).Message);

        // the untouched archive still loads
        var fine = Zip(Path.Combine(dir, "fine.pth"), entries);
        foreach (var t in MaeModelFile.ReadStateDict(fine).Values) t.Dispose();
    }

    static string TorchZip(string dir, string name, byte[] pickle) =>
        Zip(Path.Combine(dir, name), [("archive/data.pkl", pickle), ("archive/version", "3\n"u8.ToArray())]);

    [Fact]
    public void ASelfReferencingPickleFailsCleanly()
    {
        // {'model': l} where l = [l]
        byte[] pickle = [0x80, 2, (byte)'}', 0x8c, 5, .. "model"u8, (byte)']', 0x94, (byte)'h', 0, (byte)'a', (byte)'s', (byte)'.'];
        var path = TorchZip(TempDir.Create(), "selfref.pth", pickle);
        Assert.Contains("selfref.pth", FileError(() => MaeModelFile.ReadStateDict(path)).Message);
    }

    [Fact]
    public void ADeeplyNestedPickleIsRefused()
    {
        const int depth = 200_000;
        var ms = new MemoryStream();
        ms.Write([0x80, 2, (byte)'}', 0x8c, 5, .. "model"u8]);
        for (int i = 0; i < depth; i++) ms.WriteByte((byte)']');
        for (int i = 0; i < depth - 1; i++) ms.WriteByte((byte)'a');
        ms.Write("s."u8);
        var path = TorchZip(TempDir.Create(), "deep.pth", ms.ToArray());
        var ex = FileError(() => MaeModelFile.ReadStateDict(path));
        Assert.Contains("deep.pth", ex.Message);
        Assert.Contains("deep", ex.Message);
    }

    [Fact]
    public void ADeflateBombPickleIsRefusedWithoutInflatingIt()
    {
        var path = Path.Combine(TempDir.Create(), "bomb.pth");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            using (var w = zip.CreateEntry("archive/data.pkl", CompressionLevel.SmallestSize).Open())
            {
                var zeros = new byte[1 << 16];
                for (int i = 0; i < 1024; i++) w.Write(zeros);   // 64 MiB of zeros, ~64 KiB compressed
            }
            using (var w = zip.CreateEntry("archive/version").Open()) w.Write("3\n"u8);
        }
        Assert.True(new FileInfo(path).Length < 1 << 20);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = FileError(() => MaeModelFile.ReadStateDict(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("bomb.pth", ex.Message);
        Assert.True(allocated < 16 << 20, $"reading a 64 MiB pickle bomb allocated {allocated >> 20} MiB");
    }
}
