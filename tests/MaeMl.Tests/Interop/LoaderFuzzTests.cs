using System.Diagnostics;
using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Interop;
using MaeMl.Model;
using Xunit;

namespace MaeMl.Tests.Interop;

/// <summary>A few hundred randomly damaged files through every loader (issue 11): each loads or fails with a documented
/// file error (InvalidDataException, or an IOException such as UnsafePickleException or ImageDecodeException); no crash,
/// no hang, no runaway memory.</summary>
public class LoaderFuzzTests
{
    static readonly MaeConfig Tiny = TestModels.Tiny;

    static byte[] Mutate(byte[] original, Random rng)
    {
        var bytes = (byte[])original.Clone();
        switch (rng.Next(4))
        {
            case 0: return bytes[..rng.Next(bytes.Length)];                                   // truncated
            case 1:                                                                             // a few random bytes
                for (int i = rng.Next(1, 9); i > 0; i--) bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                return bytes;
            case 2:                                                                             // header bytes: sizes, lengths, magic
                for (int i = rng.Next(1, 5); i > 0; i--) bytes[rng.Next(Math.Min(bytes.Length, 256))] = (byte)rng.Next(256);
                return bytes;
            default:                                                                            // one bit
                bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
                return bytes;
        }
    }

    [Fact]
    public void DamagedFilesLoadOrFailWithAFileError()
    {
        var dir = TempDir.Create();
        var maeml = Path.Combine(dir, "base.maeml");
        var safetensors = Path.Combine(dir, "base.safetensors");
        using (var model = new MaskedAutoencoderViT(Tiny))
        {
            using var opt = TorchSharp.torch.optim.AdamW(model.parameters(), 1e-3);
            MaeCheckpoint.Save(maeml, model, optimizer: opt);
            MaeModelFile.Save(model, safetensors);
        }
        var png = TestImages.Write(dir, 1, size: 24)[0];
        var jpg = TestImages.Write(dir, 1, size: 24, format: SkiaSharp.SKEncodedImageFormat.Jpeg)[0];
        var loaders = new (string Name, string Base, Action<string> Load)[]
        {
            ("pth", OfficialFixture.PathOf("checkpoint-encoder.pth"), p => { foreach (var t in MaeModelFile.ReadStateDict(p).Values) t.Dispose(); }),
            ("safetensors", safetensors, p => MaeModelFile.LoadMae(p, new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2 }).Dispose()),
            ("maeml", maeml, p =>
            {
                using var m = new MaskedAutoencoderViT(Tiny);
                using var o = TorchSharp.torch.optim.AdamW(m.parameters(), 1e-3);
                MaeCheckpoint.LoadInto(p, m, o);
                MaeModelFile.Inspect(p);
            }),
            ("npy", OfficialFixture.PathOf("input.npy"), p => NpyFile.Load(p).Dispose()),
            ("png", png, p => ImageDecoder.DecodeBitmap(p).Dispose()),
            ("jpg", jpg, p => ImageDecoder.DecodeBitmap(p).Dispose()),
        };
        var rng = new Random(11);
        var watch = Stopwatch.StartNew();
        int loaded = 0, refused = 0;
        foreach (var (name, basePath, load) in loaders)
        {
            var original = File.ReadAllBytes(basePath);
            for (int i = 0; i < 50; i++)
            {
                var path = Path.Combine(dir, $"fuzz-{name}-{i}{Path.GetExtension(basePath)}");
                File.WriteAllBytes(path, Mutate(original, rng));
                try { load(path); loaded++; }
                catch (Exception e) when (e is InvalidDataException or IOException) { refused++; }
                catch (Exception e) { Assert.Fail($"{Path.GetFileName(path)}: {e.GetType().Name}: {e.Message}"); }
                File.Delete(path);
            }
        }
        Assert.Equal(300, loaded + refused);
        Assert.True(refused > 100, $"only {refused} of 300 damaged files were refused");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"took {watch.Elapsed}");
        Assert.True(Process.GetCurrentProcess().PeakWorkingSet64 < 8L << 30);
    }
}
