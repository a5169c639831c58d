using System.IO.Compression;
using System.Text;
using MaeMl.Interop;
using Xunit;

namespace MaeMl.Tests.Checkpoints;

/// <summary>A .pth is a pickle: loading must never run code from it, and broken files must fail clearly.</summary>
public class CheckpointSafetyTests
{
    static readonly string Marker = Path.Combine(Path.GetTempPath(), $"maeml-pwned-{Guid.NewGuid():N}");

    /// <summary>{'model': os.system('touch MARKER')}: GLOBAL 'os system', argument tuple, REDUCE (protocol 2).</summary>
    static byte[] OsSystemPickle()
    {
        var ms = new MemoryStream();
        ms.Write(new byte[] { 0x80, 2, (byte)'}' });
        WriteUnicode(ms, "model");
        ms.Write(Encoding.ASCII.GetBytes("cos\nsystem\n"));
        WriteUnicode(ms, $"touch {Marker}");
        ms.Write(new byte[] { 0x85, (byte)'R', (byte)'s', (byte)'.' });
        return ms.ToArray();
    }

    /// <summary>The same call through STACK_GLOBAL (protocol 4): module and name pushed as strings first.</summary>
    static byte[] StackGlobalPickle()
    {
        var ms = new MemoryStream();
        ms.Write(new byte[] { 0x80, 4 });
        WriteShortUnicode(ms, "builtins");
        ms.WriteByte(0x94);
        WriteShortUnicode(ms, "eval");
        ms.WriteByte(0x94);
        ms.WriteByte(0x93);
        WriteShortUnicode(ms, "print('pwned')");
        ms.Write(new byte[] { 0x85, (byte)'R', (byte)'.' });
        return ms.ToArray();
    }

    /// <summary>The call fails with a file error (InvalidDataException, or an IOException such as UnsafePickleException).</summary>
    static Exception FileError(Action load)
    {
        var ex = Assert.ThrowsAny<Exception>(load);
        Assert.True(ex is InvalidDataException or IOException, $"expected a file error, got {ex.GetType()}: {ex.Message}");
        return ex;
    }

    static void WriteUnicode(Stream s, string text)
    {
        var b = Encoding.UTF8.GetBytes(text);
        s.WriteByte((byte)'X');
        s.Write(BitConverter.GetBytes(b.Length));
        s.Write(b);
    }

    static void WriteShortUnicode(Stream s, string text)
    {
        var b = Encoding.UTF8.GetBytes(text);
        s.WriteByte(0x8c);
        s.WriteByte((byte)b.Length);
        s.Write(b);
    }

    static string TorchZip(string dir, string name, byte[] pickle)
    {
        var path = Path.Combine(dir, name);
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        using (var w = zip.CreateEntry("archive/data.pkl").Open()) w.Write(pickle);
        using (var w = new StreamWriter(zip.CreateEntry("archive/version").Open())) w.Write("3\n");
        return path;
    }

    [Fact]
    public void CraftedPickleInATorchZipIsRefusedNotRun()
    {
        var path = TorchZip(TempDir.Create(), "evil.pth", OsSystemPickle());
        var ex = Assert.Throws<UnsafePickleException>(() => MaeModelFile.LoadMae(path, new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2 }));
        Assert.Contains("evil.pth", ex.Message);
        Assert.Contains("'os.system'", ex.Message);
        Assert.Contains("refused", ex.Message);
        Assert.False(File.Exists(Marker));
        Assert.Throws<UnsafePickleException>(() => MaeModelFile.Inspect(path));
    }

    [Fact]
    public void CraftedRawPickleIsRefusedNotRun()
    {
        var dir = TempDir.Create();
        var raw = Path.Combine(dir, "evil-raw.pth");
        File.WriteAllBytes(raw, OsSystemPickle());
        var ex = Assert.Throws<UnsafePickleException>(() => MaeModelFile.ReadStateDict(raw));
        Assert.Contains("evil-raw.pth", ex.Message);
        Assert.Contains("'os.system'", ex.Message);

        var stack = TorchZip(dir, "evil-stack.pth", StackGlobalPickle());
        ex = Assert.Throws<UnsafePickleException>(() => MaeModelFile.ReadStateDict(stack));
        Assert.Contains("'builtins.eval'", ex.Message);
        Assert.Contains("STACK_GLOBAL", ex.Message);
    }

    [Fact]
    public void TheOfficialPickleOnlyUsesAllowedGlobals()
    {
        using var zip = ZipFile.OpenRead(OfficialFixture.PathOf("checkpoint-full.pth"));
        using var pkl = zip.Entries.Single(e => e.Name == "data.pkl").Open();
        using var ms = new MemoryStream();
        pkl.CopyTo(ms);
        var globals = SafePickleValidator.Validate(ms.ToArray(), "checkpoint-full.pth");
        Assert.Equal(new[] { "collections.OrderedDict", "torch.FloatStorage", "torch._utils._rebuild_tensor_v2" }, globals.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void LegacyBarePickleIsExplained()
    {
        var path = Path.Combine(TempDir.Create(), "legacy.pth");
        File.WriteAllBytes(path, new byte[] { 0x80, 2, (byte)'}', (byte)'.' });
        var ex = Assert.Throws<InvalidDataException>(() => MaeModelFile.ReadStateDict(path));
        Assert.Contains("legacy.pth", ex.Message);
        Assert.Contains("legacy", ex.Message);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.98)]
    public void TruncatedPthNamesTheFile(double keep)
    {
        var bytes = File.ReadAllBytes(OfficialFixture.PathOf("checkpoint-full.pth"));
        var path = Path.Combine(TempDir.Create(), "truncated.pth");
        File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
        var ex = FileError(() => MaeModelFile.LoadMae(path, new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2 }).Dispose());
        Assert.Contains("truncated.pth", ex.Message);
    }

    [Fact]
    public void DamagedTensorBytesAreCaughtByTheZipChecksum()
    {
        var path = Path.Combine(TempDir.Create(), "damaged-data.pth");
        File.Copy(OfficialFixture.PathOf("checkpoint-full.pth"), path);
        long offset;
        using (var zip = ZipFile.OpenRead(path))
        {
            // stored (uncompressed) entries: find the bytes of data/1 in the file
            var bytes = File.ReadAllBytes(path);
            var name = Encoding.ASCII.GetBytes(zip.Entries.Single(e => e.FullName.EndsWith("/data/1")).FullName);
            offset = bytes.AsSpan().IndexOf(name) + name.Length + 200;
        }
        using (var stream = File.OpenWrite(path)) { stream.Position = offset; stream.Write(new byte[8]); }
        var ex = FileError(() => MaeModelFile.ReadStateDict(path));
        Assert.Contains("damaged-data.pth", ex.Message);
        Assert.Contains("CRC-32", ex.Message);
    }

    [Fact]
    public void CorruptPickleInsideTheZipNamesTheFile()
    {
        var path = TorchZip(TempDir.Create(), "corrupt.pth", new byte[] { 0x80, 2, (byte)'}', (byte)'X', 200, 0, 0, 0, (byte)'a' });
        var ex = FileError(() => MaeModelFile.ReadStateDict(path));
        Assert.Contains("corrupt.pth", ex.Message);
        Assert.Contains("truncated or corrupt", ex.Message);
    }

    [Fact]
    public void TruncatedOrCorruptSafetensorsNameTheFile()
    {
        var dir = TempDir.Create();
        var good = Path.Combine(dir, "good.safetensors");
        using (var model = new MaeMl.Model.MaskedAutoencoderViT(OfficialFixture.Config)) MaeModelFile.Save(model, good);
        var bytes = File.ReadAllBytes(good);

        var truncated = Path.Combine(dir, "cut.safetensors");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length - 100)]);
        var ex = FileError(() => MaeModelFile.ReadStateDict(truncated));
        Assert.Contains("cut.safetensors", ex.Message);
        Assert.Contains("truncated", ex.Message);

        var garbage = Path.Combine(dir, "garbage.bin");
        File.WriteAllBytes(garbage, Encoding.ASCII.GetBytes("definitely not weights"));
        ex = FileError(() => MaeModelFile.ReadStateDict(garbage));
        Assert.Contains("garbage.bin", ex.Message);
    }
}
