// CIFAR-10 transfer benchmark: rows (a) and (b) of scripts/cifar10-protocol.sh, in one process, on one seeded split.
//
//   (a) ML.NET's ImageNet-supervised ResNet18 featurizer: LoadImages + ResizeImages(224) + ExtractPixels + DnnFeaturizeImage(ResNet18)
//   (b) MaeMl's MAE encoder featurizer: LoadImages + ApplyMaeEncoder (ONNX exported from --mae with VitEncoderOnnxExporter)
//   both followed by the same NormalizeMinMax + LbfgsMaximumEntropy, fitted on the train split and scored on the test split.
//
//   dotnet run -c Release --project bench/MaeMl.Transfer -- --mae pretrained/cifar10-vit-tiny.maeml --data ../shared/data/cifar10
//
// Each row's wall-clock covers everything the row does (for (b) also loading the MAE file and writing the ONNX encoder):
// fitting the pipeline (featurizing every training image once, then NormalizeMinMax and L-BFGS) and evaluating it on the
// test images. images/s = (train + test images) / wall-clock: every image goes through the featurizer exactly once.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Data;
using MaeMl.Interop;
using MaeMl.MLNet;
using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

Options o;
try { o = Options.Parse(args); }
catch (ArgumentException e)
{
    Console.Error.WriteLine($"maeml-transfer: {e.Message}");
    Console.Error.WriteLine(Options.Usage);
    return 2;
}
if (o.Help) { Console.WriteLine(Options.Usage); return 0; }

var train = Split.Load(o.TrainDir, o.TrainPerClass, o.TrainLimit, o.Seed);
var test = Split.Load(o.TestDir, o.TestPerClass, o.TestLimit, o.Seed);
var unknown = test.Select(r => r.Label).Distinct().Except(train.Select(r => r.Label)).ToList();
if (unknown.Count > 0) { Console.Error.WriteLine($"maeml-transfer: test classes not in the train split: {string.Join(", ", unknown)}"); return 2; }
Console.WriteLine($"train {train.Count} images from {o.TrainDir} ({Split.Describe(o.TrainPerClass, o.TrainLimit, o.Seed)}), " +
                  $"test {test.Count} images from {o.TestDir} ({Split.Describe(o.TestPerClass, o.TestLimit, o.Seed)}); " +
                  $"{train.Select(r => r.Label).Distinct().Count()} classes, {Environment.ProcessorCount} cores");

var results = new List<Row>();
foreach (var row in o.Rows)
{
    var ml = new MLContext(seed: o.Seed);
    var trainView = ml.Data.LoadFromEnumerable(train);
    var testView = ml.Data.LoadFromEnumerable(test);
    var watch = Stopwatch.StartNew();
    string method;
    string? tempOnnx = null;
    IEstimator<ITransformer> featurizer;
    if (row == "a")
    {
        method = "ML.NET ResNet18 featurizer (ImageNet-supervised, 224 px) + NormalizeMinMax + LbfgsMaximumEntropy";
        featurizer = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(ImageRow.ImagePath))
            .Append(ml.Transforms.ResizeImages("Image224", imageWidth: 224, imageHeight: 224, inputColumnName: "Image"))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image224"))
            .Append(ml.Transforms.DnnFeaturizeImage("Features", m => m.ModelSelector.ResNet18(ml, m.OutputColumn, m.InputColumn), "Pixels"));
    }
    else
    {
        string onnx;
        if (o.EncoderOnnx is not null) onnx = o.EncoderOnnx;
        else
        {
            onnx = o.OutDir is not null ? Path.Combine(o.OutDir, $"mae-encoder-{o.Pooling.ToString().ToLowerInvariant()}.onnx")
                                        : tempOnnx = Path.Combine(Path.GetTempPath(), $"maeml-transfer-{Environment.ProcessId}.onnx");
            if (o.OutDir is not null) Directory.CreateDirectory(o.OutDir);
            using var mae = MaeModelFile.LoadMae(o.MaeFile!, new MaeLoadOptions { AllowMissingDecoder = true });
            mae.eval();
            VitEncoderOnnxExporter.Export(mae, onnx, new VitEncoderOnnxOptions { Poolings = [o.Pooling] });
            var c = mae.Config;
            Console.WriteLine($"(b) exported the encoder of {o.MaeFile} (img {c.ImageSize}, patch {c.PatchSize}, {c.EmbedDim}x{c.Depth}) to {onnx} in {watch.Elapsed.TotalSeconds:F1} s");
        }
        method = $"MAE encoder featurizer (ApplyMaeEncoder, {o.Pooling.ToString().ToLowerInvariant()} pooling) + NormalizeMinMax + LbfgsMaximumEntropy";
        featurizer = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(ImageRow.ImagePath))
            .Append(ml.Transforms.ApplyMaeEncoder(new MaeEncoderOptions
            {
                InputColumnName = "Image", OutputColumnName = "Features", ModelFile = onnx, Pooling = o.Pooling,
            }));
    }
    try
    {
        // Featurize once: cache only the label and the features (the 224x224 pixel planes of (a) would take 600 KB a row),
        // then the normalizer and the trainer make their passes over the cache.
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(featurizer)
            .Append(ml.Transforms.SelectColumns("Label", "Features"))
            .AppendCacheCheckpoint(ml)
            .Append(ml.Transforms.NormalizeMinMax("Features"))
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy());
        var fitStart = watch.Elapsed;
        var model = pipeline.Fit(trainView);
        var fitSeconds = (watch.Elapsed - fitStart).TotalSeconds;
        var evalStart = watch.Elapsed;
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(testView));
        var evalSeconds = (watch.Elapsed - evalStart).TotalSeconds;
        var wall = watch.Elapsed.TotalSeconds;
        var r = new Row(row, method, train.Count, test.Count, metrics.MicroAccuracy, metrics.MacroAccuracy, wall, train.Count + test.Count,
            (train.Count + test.Count) / wall, fitSeconds, evalSeconds, test.Count / evalSeconds);
        results.Add(r);
        Console.WriteLine($"({row}) top-1 {r.Top1:P2} (macro {r.Macro:P2}), wall-clock {wall:F1} s (fit on {train.Count} images {fitSeconds:F1} s, " +
                          $"evaluation on {test.Count} images {evalSeconds:F1} s = {r.EvalImagesPerSecond:F1} images/s), {r.ImagesPerSecond:F1} images/s end to end");
    }
    finally
    {
        if (tempOnnx is not null) File.Delete(tempOnnx);
    }
}

var table = Row.Markdown(results);
Console.WriteLine();
Console.Write(table);
if (o.OutDir is not null)
{
    Directory.CreateDirectory(o.OutDir);
    File.WriteAllText(Path.Combine(o.OutDir, "transfer.md"), table);
    var json = new JsonObject
    {
        ["train_dir"] = o.TrainDir, ["test_dir"] = o.TestDir, ["split_train"] = Split.Describe(o.TrainPerClass, o.TrainLimit, o.Seed),
        ["split_test"] = Split.Describe(o.TestPerClass, o.TestLimit, o.Seed), ["mae"] = o.MaeFile, ["encoder_onnx"] = o.EncoderOnnx,
        ["cores"] = Environment.ProcessorCount,
        ["rows"] = new JsonArray(results.Select(r => (JsonNode)r.ToJson()).ToArray()),
    };
    File.WriteAllText(Path.Combine(o.OutDir, "transfer.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"written {Path.Combine(o.OutDir, "transfer.md")} and transfer.json");
}
return 0;

public sealed class ImageRow
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}

public sealed record Row(string Id, string Method, int TrainImages, int TestImages, double Top1, double Macro, double WallSeconds, int ImagePasses,
    double ImagesPerSecond, double FitSeconds, double EvalSeconds, double EvalImagesPerSecond)
{
    public JsonObject ToJson() => new()
    {
        ["row"] = Id, ["method"] = Method, ["train_images"] = TrainImages, ["test_images"] = TestImages, ["top1"] = Top1, ["macro_accuracy"] = Macro,
        ["wall_s"] = Math.Round(WallSeconds, 2), ["image_passes"] = ImagePasses, ["images_per_s"] = Math.Round(ImagesPerSecond, 2),
        ["fit_s"] = Math.Round(FitSeconds, 2), ["eval_s"] = Math.Round(EvalSeconds, 2), ["eval_images_per_s"] = Math.Round(EvalImagesPerSecond, 2),
    };

    public static string Markdown(IEnumerable<Row> rows)
    {
        var s = new System.Text.StringBuilder();
        s.AppendLine("| row | method | train images | test images | top-1 | wall-clock | image passes | images/s |");
        s.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in rows)
            s.AppendLine($"| ({r.Id}) | {r.Method} | {r.TrainImages} | {r.TestImages} | {r.Top1 * 100:F2}% | {r.WallSeconds:F1} s | {r.ImagePasses} | {r.ImagesPerSecond:F1} |");
        return s.ToString();
    }
}

static class Split
{
    static readonly HashSet<string> ListingExtensions = new(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp" };

    /// <summary>
    /// With <paramref name="perClass"/> &gt; 0: the evenly spaced per-class subset of MaeMl's <see cref="ImageFolder.Labelled"/>, the
    /// images <c>maeml finetune/linprobe --limit-per-class</c> and <c>--val-limit-per-class</c> pick. Otherwise all images, or with
    /// <paramref name="limit"/> &gt; 0 a seeded random subset, the one <c>maeml linear-eval --train-limit/--test-limit</c> picks.
    /// </summary>
    public static List<ImageRow> Load(string dir, int perClass, int limit, int seed)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"image folder '{dir}' does not exist");
        if (perClass > 0)
        {
            var folder = ImageFolder.Labelled(dir, perClass);
            return folder.Samples.Select(s => new ImageRow { ImagePath = s.Path, Label = folder.Classes[s.Label] }).ToList();
        }
        var items = Directory.GetDirectories(dir).OrderBy(d => d, StringComparer.Ordinal)
            .SelectMany(d => Directory.GetFiles(d).Where(f => ListingExtensions.Contains(Path.GetExtension(f))).OrderBy(f => f, StringComparer.Ordinal)
                .Select(f => new ImageRow { ImagePath = f, Label = Path.GetFileName(d) }))
            .ToList();
        if (items.Count == 0) throw new InvalidDataException($"no images in class folders under '{dir}'");
        if (limit > 0 && limit < items.Count)
        {
            var rng = new Random(seed);
            items = items.OrderBy(_ => rng.Next()).Take(limit).ToList();
        }
        return items;
    }

    public static string Describe(int perClass, int limit, int seed) =>
        perClass > 0 ? $"{perClass} per class, evenly spaced" : limit > 0 ? $"seeded random {limit} (seed {seed})" : "all";
}

sealed class Options
{
    public string? MaeFile, EncoderOnnx, OutDir;
    public string TrainDir = "", TestDir = "";
    public int TrainLimit = 5000, TestLimit = 2000, TrainPerClass, TestPerClass, Seed;
    public EncoderPooling Pooling = EncoderPooling.Mean;
    public string[] Rows = ["a", "b"];
    public bool Help;

    public const string Usage = """
        usage: MaeMl.Transfer --mae MODEL_FILE [options]      (rows (a) and (b) of scripts/cifar10-protocol.sh)
          --mae FILE             MAE model file (.maeml, official .pth or safetensors) whose encoder row (b) exports to ONNX
          --encoder-onnx FILE    use this already exported encoder (maeml export-onnx --pooling mean) instead of --mae
          --data DIR             folder with train/ and test/ class folders (default ../shared/data/cifar10)
          --train DIR, --test DIR  the two class-folder trees (override --data)
          --train-limit N        seeded random subset of the training images (default 5000; 0 = all)
          --test-limit N         seeded random subset of the test images (default 2000; 0 = all)
          --train-per-class N    instead: N images per class, evenly spaced (= maeml --limit-per-class N)
          --test-per-class N     instead: N test images per class (= maeml --val-limit-per-class N)
          --seed N               split and ML.NET seed (default 0)
          --pooling mean|cls     MAE embedding for row (b) (default mean)
          --rows a,b             rows to run (default a,b)
          --out DIR              write transfer.md, transfer.json (and the exported encoder) here
        """;

    public static Options Parse(string[] args)
    {
        var o = new Options();
        string data = "../shared/data/cifar10";
        string? trainDir = null, testDir = null;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int NextInt()
            {
                var name = args[i];
                var v = Next();
                return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 0 ? n : throw new ArgumentException($"{name}: '{v}' is not a count");
            }
            switch (args[i])
            {
                case "--mae": o.MaeFile = Next(); break;
                case "--encoder-onnx": o.EncoderOnnx = Next(); break;
                case "--data": data = Next(); break;
                case "--train": trainDir = Next(); break;
                case "--test": testDir = Next(); break;
                case "--train-limit": o.TrainLimit = NextInt(); break;
                case "--test-limit": o.TestLimit = NextInt(); break;
                case "--train-per-class": o.TrainPerClass = NextInt(); break;
                case "--test-per-class": o.TestPerClass = NextInt(); break;
                case "--seed": o.Seed = NextInt(); break;
                case "--pooling":
                    var p = Next().ToLowerInvariant();
                    o.Pooling = p switch { "mean" => EncoderPooling.Mean, "cls" => EncoderPooling.Cls, _ => throw new ArgumentException($"--pooling: '{p}' (use mean or cls)") };
                    break;
                case "--rows":
                    o.Rows = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(r => r.ToLowerInvariant()).Distinct().ToArray();
                    if (o.Rows.Length == 0 || o.Rows.Any(r => r is not ("a" or "b"))) throw new ArgumentException("--rows: a, b or a,b");
                    break;
                case "--out": o.OutDir = Next(); break;
                case "-h" or "--help": o.Help = true; break;
                default: throw new ArgumentException($"unknown argument '{args[i]}'");
            }
        }
        o.TrainDir = trainDir ?? Path.Combine(data, "train");
        o.TestDir = testDir ?? Path.Combine(data, "test");
        if (!o.Help && o.Rows.Contains("b") && (o.MaeFile is null) == (o.EncoderOnnx is null))
            throw new ArgumentException("row (b) needs --mae MODEL_FILE or --encoder-onnx FILE (one of them)");
        if (o.MaeFile is not null && !File.Exists(o.MaeFile)) throw new ArgumentException($"--mae: '{o.MaeFile}' does not exist");
        if (o.EncoderOnnx is not null && !File.Exists(o.EncoderOnnx)) throw new ArgumentException($"--encoder-onnx: '{o.EncoderOnnx}' does not exist");
        return o;
    }
}
