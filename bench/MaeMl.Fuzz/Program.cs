// Random-mutation fuzzing of MaeMl's file readers for a bounded time (issue 11: "a fuzz harness for the file readers ...
// run for a bounded time in a benchmark-style command, not in CI; report executions and crashes found").
//   dotnet run -c Release --project bench/MaeMl.Fuzz -- [--seconds 60] [--seed 1] [--fixtures tests/MaeMl.Tests/Fixtures] [--out runs/fuzz]
// Every mutated file must load or fail with a documented file error (InvalidDataException or an IOException such as
// UnsafePickleException or ImageDecodeException). Anything else is a crash: its input is kept under --out, and the
// exit code is 1. Memory is watched too: a working set above 8 GiB counts as a finding.
using System.Diagnostics;
using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Interop;
using MaeMl.Model;

double seconds = 60; int seed = 1; string fixtures = "tests/MaeMl.Tests/Fixtures"; string outDir = "runs/fuzz";
for (int i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--seconds": seconds = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
        case "--seed": seed = int.Parse(Next()); break;
        case "--fixtures": fixtures = Next(); break;
        case "--out": outDir = Next(); break;
        default: Console.Error.WriteLine($"maeml-fuzz: unknown argument '{args[i]}' (--seconds, --seed, --fixtures, --out)"); return 2;
    }
}
var official = Path.Combine(fixtures, "mae-official-tiny");
if (!Directory.Exists(official)) { Console.Error.WriteLine($"maeml-fuzz: no fixture folder '{official}' (give --fixtures)"); return 2; }
Directory.CreateDirectory(outDir);
var work = Directory.CreateTempSubdirectory("maeml-fuzz-").FullName;

var tiny = new MaeConfig { ImageSize = 16, PatchSize = 4, EmbedDim = 32, Depth = 2, NumHeads = 2, DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2 };
var maeml = Path.Combine(work, "base.maeml");
var safetensors = Path.Combine(work, "base.safetensors");
using (var model = new MaskedAutoencoderViT(tiny))
{
    using var opt = new MaeMl.Training.AdamW(MaeMl.Training.ParameterGroups.AdamWGroups(model, 1e-3, 0.05), 1e-3, 0.9, 0.95);
    MaeCheckpoint.Save(maeml, model, optimizer: opt);
    MaeModelFile.Save(model, safetensors);
}
string Image(SkiaSharp.SKEncodedImageFormat format, string name)
{
    using var bmp = new SkiaSharp.SKBitmap(24, 20);
    var rng = new Random(3);
    for (int y = 0; y < 20; y++) for (int x = 0; x < 24; x++) bmp.SetPixel(x, y, new SkiaSharp.SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)));
    using var img = SkiaSharp.SKImage.FromBitmap(bmp);
    using var data = img.Encode(format, 90);
    var path = Path.Combine(work, name);
    File.WriteAllBytes(path, data.ToArray());
    return path;
}
var loaders = new (string Name, string Base, Action<string> Load)[]
{
    ("pth", Path.Combine(official, "checkpoint-full.pth"), p => { foreach (var t in MaeModelFile.ReadStateDict(p).Values) t.Dispose(); }),
    ("pth-training", Path.Combine(fixtures, "pytorch-checkpoints", "checkpoint-1.pth"), p => { foreach (var t in MaeModelFile.ReadStateDict(p).Values) t.Dispose(); }),
    ("safetensors", safetensors, p => MaeModelFile.LoadMae(p, new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2 }).Dispose()),
    ("maeml", maeml, p =>
    {
        using var m = new MaskedAutoencoderViT(tiny);
        using var o = new MaeMl.Training.AdamW(MaeMl.Training.ParameterGroups.AdamWGroups(m, 1e-3, 0.05), 1e-3, 0.9, 0.95);
        MaeCheckpoint.LoadInto(p, m, o);
        MaeModelFile.Inspect(p);
    }),
    ("npy", Path.Combine(official, "input.npy"), p => NpyFile.Load(p).Dispose()),
    ("png", Image(SkiaSharp.SKEncodedImageFormat.Png, "base.png"), p => ImageDecoder.DecodeBitmap(p).Dispose()),
    ("jpg", Image(SkiaSharp.SKEncodedImageFormat.Jpeg, "base.jpg"), p => ImageDecoder.DecodeBitmap(p).Dispose()),
};
loaders = loaders.Where(l => File.Exists(l.Base)).ToArray();

static byte[] Mutate(byte[] original, Random rng)
{
    var b = (byte[])original.Clone();
    switch (rng.Next(7))
    {
        case 0: return b[..rng.Next(b.Length)];                                                       // truncate
        case 1: for (int i = rng.Next(1, 9); i > 0; i--) b[rng.Next(b.Length)] = (byte)rng.Next(256); return b;   // random bytes
        case 2: for (int i = rng.Next(1, 5); i > 0; i--) b[rng.Next(Math.Min(b.Length, 512))] = (byte)rng.Next(256); return b;   // header
        case 3: b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8)); return b;                           // one bit
        case 4:                                                                                        // interesting integers
        {
            int at = rng.Next(Math.Max(1, b.Length - 8));
            long[] values = [0, -1, 1, int.MaxValue, int.MinValue, long.MaxValue, 1L << 40, 65536, 255];
            BitConverter.GetBytes(values[rng.Next(values.Length)]).AsSpan(0, Math.Min(8, b.Length - at)).CopyTo(b.AsSpan(at));
            return b;
        }
        case 5:                                                                                        // duplicate a chunk
        {
            int from = rng.Next(b.Length), len = Math.Min(rng.Next(1, 256), b.Length - from), to = rng.Next(b.Length);
            return [.. b[..to], .. b.AsSpan(from, len), .. b[to..]];
        }
        default:                                                                                       // delete a chunk
        {
            int from = rng.Next(b.Length), len = Math.Min(rng.Next(1, 256), b.Length - from);
            return [.. b[..from], .. b[(from + len)..]];
        }
    }
}

var random = new Random(seed);
var stats = loaders.ToDictionary(l => l.Name, _ => (Runs: 0, Loaded: 0, Refused: 0, Crashes: 0));
var originals = loaders.ToDictionary(l => l.Name, l => File.ReadAllBytes(l.Base));
var watch = Stopwatch.StartNew();
long peak = 0;
int crashes = 0;
while (watch.Elapsed.TotalSeconds < seconds)
{
    var (name, basePath, load) = loaders[random.Next(loaders.Length)];
    var bytes = Mutate(originals[name], random);
    var path = Path.Combine(work, $"case{Path.GetExtension(basePath)}");
    File.WriteAllBytes(path, bytes);
    var s = stats[name];
    s.Runs++;
    try { load(path); s.Loaded++; }
    catch (Exception e) when (e is InvalidDataException or IOException) { s.Refused++; }
    catch (Exception e)
    {
        s.Crashes++;
        crashes++;
        var kept = Path.Combine(outDir, $"crash-{name}-{s.Runs}{Path.GetExtension(basePath)}");
        File.Copy(path, kept, overwrite: true);
        Console.WriteLine($"CRASH {name} run {s.Runs}: {e.GetType().Name}: {e.Message.Split('\n')[0]} (input kept: {kept})");
    }
    stats[name] = s;
    peak = Math.Max(peak, Process.GetCurrentProcess().WorkingSet64);
    if (peak > 8L << 30) { Console.WriteLine($"FINDING: working set {peak >> 20} MiB after a {name} case"); crashes++; break; }
}
Console.WriteLine($"fuzzed {stats.Values.Sum(v => v.Runs)} files in {watch.Elapsed.TotalSeconds:F0} s (seed {seed}), peak working set {peak >> 20} MiB");
Console.WriteLine("| reader | executions | loaded | refused (file error) | crashes |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: |");
foreach (var (name, v) in stats) Console.WriteLine($"| {name} | {v.Runs} | {v.Loaded} | {v.Refused} | {v.Crashes} |");
Directory.Delete(work, recursive: true);
return crashes == 0 ? 0 : 1;
