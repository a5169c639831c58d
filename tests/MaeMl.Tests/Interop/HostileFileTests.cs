using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Interop;
using MaeMl.Model;
using Xunit;

namespace MaeMl.Tests.Interop;

/// <summary>Files crafted to trick or exhaust the loaders (issue 11): each is refused with a file error, quickly, in bounded memory.</summary>
public class HostileFileTests
{
    static Exception FileError(Action load)
    {
        var ex = Assert.ThrowsAny<Exception>(load);
        Assert.True(ex is InvalidDataException or IOException, $"expected a file error, got {ex.GetType()}: {ex.Message}");
        return ex;
    }

    static readonly MaeLoadOptions Heads = new() { NumHeads = 2, DecoderNumHeads = 2 };

    static string SafetensorsWith(string dir, string name, Action<Dictionary<string, TorchSharp.torch.Tensor>> change)
    {
        var state = OfficialFixture.StateDict();
        change(state);
        var path = Path.Combine(dir, name);
        SafetensorsFile.Write(path, state);
        foreach (var t in state.Values) t.Dispose();
        return path;
    }

    [Fact]
    public void BlockNumbersCannotAskForAModelFarLargerThanTheFile()
    {
        var dir = TempDir.Create();
        var path = SafetensorsWith(dir, "million.safetensors", s => s["decoder_blocks.1000000.norm1.weight"] = TorchSharp.torch.ones(16));
        var info = MaeModelFile.Inspect(path, Heads);
        Assert.Null(info.Config);
        Assert.Contains("decoder_blocks.1000000", info.ConfigProblem);
        var ex = FileError(() => MaeModelFile.LoadMae(path, Heads).Dispose());
        Assert.Contains("million.safetensors", ex.Message);

        // a small gap is left to the strict load, which lists the missing tensors
        var gap = SafetensorsWith(dir, "gap.safetensors", s => s["blocks.5.norm1.weight"] = TorchSharp.torch.ones(32));
        Assert.Equal(6, MaeModelFile.Inspect(gap, Heads).Config!.Depth);
        var gapError = FileError(() => MaeModelFile.LoadMae(gap, Heads).Dispose()).Message;
        Assert.True(gapError.Contains("gap.safetensors") && gapError.Contains("missing"), gapError);
    }

    static readonly MaeConfig Tiny = TestModels.Tiny;

    /// <summary>(header JSON, model section, optimizer section) of a .maeml file.</summary>
    static (JsonObject Header, byte[] Model, byte[] Optimizer) Sections(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path));
        r.ReadBytes(6);
        var header = JsonNode.Parse(r.ReadBytes(r.ReadInt32()))!.AsObject();
        var model = r.ReadBytes((int)r.ReadInt64());
        var optimizer = r.ReadBytes((int)r.ReadInt64());
        return (header, model, optimizer);
    }

    static void WriteSections(string path, JsonObject header, byte[] model, byte[] optimizer, long? optimizerLength = null)
    {
        using var w = new BinaryWriter(File.Create(path));
        w.Write("MAEML"u8);
        w.Write((byte)1);
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        w.Write(json.Length);
        w.Write(json);
        w.Write((long)model.Length);
        w.Write(model);
        w.Write(optimizerLength ?? optimizer.Length);
        w.Write(optimizer);
    }

    static string SavedTiny(string dir, bool withOptimizer = false)
    {
        var path = Path.Combine(dir, "tiny.maeml");
        using var model = new MaskedAutoencoderViT(Tiny);
        if (withOptimizer)
        {
            using var opt = TorchSharp.torch.optim.AdamW(model.parameters(), 1e-3);
            MaeCheckpoint.Save(path, model, optimizer: opt);
        }
        else MaeCheckpoint.Save(path, model);
        return path;
    }

    [Fact]
    public void ADeclaredArchitectureLargerThanTheStoredWeightsIsRefusedBeforeBuilding()
    {
        var dir = TempDir.Create();
        var (header, model, optimizer) = Sections(SavedTiny(dir));
        var path = Path.Combine(dir, "declared.maeml");
        foreach (var (key, value) in new[] { ("DecoderDepth", 3), ("DecoderDepth", 1_000_000), ("EmbedDim", 12288), ("Depth", 100_000) })
        {
            var h = header.DeepClone().AsObject();
            h["config"]![key] = value;
            WriteSections(path, h, model, optimizer);
            var ex = FileError(() => MaeCheckpoint.LoadModel(path).Dispose());
            Assert.Contains("declared.maeml", ex.Message);
            Assert.Contains("model section", ex.Message);
            FileError(() => MaeModelFile.Inspect(path));
        }
    }

    [Fact]
    public void ADamagedMaemlSectionFailsItsChecksum()
    {
        var dir = TempDir.Create();
        var good = SavedTiny(dir, withOptimizer: true);
        var (header, model, optimizer) = Sections(good);
        var path = Path.Combine(dir, "flipped.maeml");
        var damaged = (byte[])model.Clone();
        damaged[damaged.Length - 10] ^= 0x40;   // inside the last tensor's float data
        WriteSections(path, header, damaged, optimizer);
        var ex = FileError(() => MaeCheckpoint.LoadModel(path).Dispose());
        Assert.Contains("flipped.maeml", ex.Message);
        Assert.Contains("checksum", ex.Message);

        var opt = (byte[])optimizer.Clone();
        opt[opt.Length - 10] ^= 0x40;
        WriteSections(path, header, model, opt);
        using (var m = new MaskedAutoencoderViT(Tiny))
        using (var o = TorchSharp.torch.optim.AdamW(m.parameters(), 1e-3))
            Assert.Contains("checksum", FileError(() => MaeCheckpoint.LoadInto(path, m, o)).Message);

        // files written before checksums existed still load
        var old = header.DeepClone().AsObject();
        old.Remove("checksums");
        WriteSections(path, old, model, optimizer);
        MaeCheckpoint.LoadModel(path).Dispose();
    }

    [Fact]
    public void ANegativeOptimizerLengthIsCorruptionNotAFreshOptimizer()
    {
        var dir = TempDir.Create();
        var (header, model, optimizer) = Sections(SavedTiny(dir, withOptimizer: true));
        var path = Path.Combine(dir, "minus-one.maeml");
        WriteSections(path, header, model, optimizer, optimizerLength: -1);
        using var m = new MaskedAutoencoderViT(Tiny);
        using var o = TorchSharp.torch.optim.AdamW(m.parameters(), 1e-3);
        var ex = FileError(() => MaeCheckpoint.LoadInto(path, m, o));
        Assert.Contains("minus-one.maeml", ex.Message);
        Assert.Contains("optimizer", ex.Message);

        // has_optimizer says there is one, the section is empty
        WriteSections(path, header, model, []);
        Assert.Contains("optimizer", FileError(() => MaeCheckpoint.LoadInto(path, m, o)).Message);
    }

    static string RawSafetensors(string path, string json, int dataBytes)
    {
        var header = Encoding.UTF8.GetBytes(json);
        using var s = File.Create(path);
        s.Write(BitConverter.GetBytes((ulong)header.Length));
        s.Write(header);
        s.Write(new byte[dataBytes]);
        return path;
    }

    [Fact]
    public void SafetensorsWithDuplicateNamesOrOverlappingDataAreRefused()
    {
        var dir = TempDir.Create();
        var dup = RawSafetensors(Path.Combine(dir, "dup.safetensors"),
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", 16);
        var ex = FileError(() => SafetensorsFile.ReadHeader(dup, out _));
        Assert.Contains("dup.safetensors", ex.Message);
        Assert.Contains("'a'", ex.Message);
        var overlap = RawSafetensors(Path.Combine(dir, "overlap.safetensors"),
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12);
        ex = FileError(() => SafetensorsFile.ReadHeader(overlap, out _));
        Assert.Contains("overlap", ex.Message);
    }

    static string Npy(string path, string shape)
    {
        var header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}";
        header = header.PadRight(118) + "\n";
        using var s = File.Create(path);
        s.Write([0x93, .. "NUMPY"u8, 1, 0]);
        s.Write(BitConverter.GetBytes((ushort)header.Length));
        s.Write(Encoding.Latin1.GetBytes(header));
        s.Write(new byte[64]);
        return path;
    }

    [Theory]
    [InlineData("(-1, 4)")]
    [InlineData("(4611686018427387904, 4)")]
    [InlineData("(x,)")]
    [InlineData("(99999999999999999999,)")]
    public void NpyWithImpossibleShapesIsRefused(string shape)
    {
        var path = Npy(Path.Combine(TempDir.Create(), "bad.npy"), shape);
        Assert.Contains("bad.npy", FileError(() => NpyFile.Load(path).Dispose()).Message);
    }
}
