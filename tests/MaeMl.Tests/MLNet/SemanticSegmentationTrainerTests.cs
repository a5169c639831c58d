using MaeMl.MLNet;
using MaeMl.Segmentation;
using MaeMl.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using SkiaSharp;
using Xunit;
using Xunit.Abstractions;

namespace MaeMl.Tests.MLNet;

/// <summary>
/// The ML.NET segmentation trainer: images and grey PNG masks of different, non-square sizes; masks come back at each input image's
/// size; the ML.NET chain (fresh, after Save/Load, and rebuilt from the exported .onnx by ApplyMaeSegmenter) gives the class ids of the
/// TorchSharp model with the same nearest-pixel resize. Runs alone: training seeds and draws from torch's global generator.
/// </summary>
[Collection("TorchGlobalRng")]
public sealed class SemanticSegmentationTrainerTests(SemanticSegmentationTrainerTests.Trained t, ITestOutputHelper output) : IClassFixture<SemanticSegmentationTrainerTests.Trained>
{
    public sealed class Row
    {
        public string ImagePath { get; set; } = "";
        public string MaskPath { get; set; } = "";
    }

    public sealed record MaskImage(string Image, string Mask, int Width, int Height);

    static readonly string[] Classes = ["background", "yellow", "cyan"];

    /// <summary>PNGs of random sizes (<paramref name="minSide"/>..<paramref name="maxSide"/>, never square) with one or two rectangles,
    /// and grey masks of the same size: 0 background, 1 yellow, 2 cyan, 255 (ignored) on a one-pixel frame around each rectangle.</summary>
    public static List<MaskImage> Write(string dir, int count, int minSide = 20, int maxSide = 72, int seed = 0)
    {
        Directory.CreateDirectory(dir);
        var rng = new Random(seed);
        var colors = new[] { new SKColor(240, 200, 40), new SKColor(40, 200, 240) };
        var result = new List<MaskImage>();
        for (int i = 0; i < count; i++)
        {
            int w = rng.Next(minSide, maxSide + 1), h = rng.Next(minSide, maxSide + 1);
            if (w == h) w++;
            using var bitmap = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Premul);
            using var canvas = new SKCanvas(bitmap);
            canvas.Clear(new SKColor(30, 30, 40));
            var mask = new byte[w * h];
            for (int j = 0; j < 1 + i % 2; j++)
            {
                int cls = (i + j) % 2;
                int bw = w / 4 + rng.Next(w / 3), bh = h / 4 + rng.Next(h / 3), x0 = rng.Next(w - bw), y0 = rng.Next(h - bh);
                using var paint = new SKPaint { Color = colors[cls] };
                canvas.DrawRect(x0, y0, bw, bh, paint);
                for (int y = Math.Max(0, y0 - 1); y < Math.Min(h, y0 + bh + 1); y++)
                for (int x = Math.Max(0, x0 - 1); x < Math.Min(w, x0 + bw + 1); x++)
                    mask[y * w + x] = x < x0 || y < y0 || x >= x0 + bw || y >= y0 + bh ? (byte)255 : (byte)(cls + 1);
            }
            string image = Path.Combine(dir, $"img{i:D3}.png"), maskPath = Path.Combine(dir, $"mask{i:D3}.png");
            Save(bitmap, image);
            using var grey = new SKBitmap(new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque));
            var rows = new byte[grey.RowBytes * h];
            for (int y = 0; y < h; y++) Array.Copy(mask, y * w, rows, y * grey.RowBytes, w);
            System.Runtime.InteropServices.Marshal.Copy(rows, 0, grey.GetPixels(), rows.Length);
            Save(grey, maskPath);
            result.Add(new MaskImage(image, maskPath, w, h));
        }
        return result;
    }

    static void Save(SKBitmap bitmap, string path)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    static IEstimator<ITransformer> Inputs(MLContext ml) => ml.Transforms.LoadImages("Image", null, "ImagePath").Append(ml.Transforms.LoadImages("Mask", null, "MaskPath"));

    /// <summary>One segmenter trained for the whole class: 12 images of 20..72 px (no two sides equal), 3 classes, model input 32 px.</summary>
    public sealed class Trained : IDisposable
    {
        public readonly string Dir = TestImages.TempDir("seg-mlnet");
        public readonly MLContext Ml = new(seed: 0);
        public readonly List<MaskImage> Images;
        public readonly IDataView Data, Loaded;
        public readonly MaeSemanticSegmentationTrainer Trainer;
        public readonly ITransformer Model, Reloaded;
        public readonly string Onnx;
        public readonly List<string> Log = [];

        public Trained()
        {
            Images = Write(Path.Combine(Dir, "images"), 12);
            Data = Ml.Data.LoadFromEnumerable(Images.Select(i => new Row { ImagePath = i.Image, MaskPath = i.Mask }));
            Loaded = Inputs(Ml).Fit(Data).Transform(Data);
            var written = Path.Combine(Dir, "seg.onnx");
            Ml.Log += (_, e) => { if (e.Message.Contains("MaeSemanticSegmentation")) lock (Log) Log.Add(e.Message); };
            Trainer = Ml.MulticlassClassification.Trainers.MaeSemanticSegmentation(new MaeSemanticSegmentationOptions
            {
                Seed = 0, Encoder = DenseTestData.TinyEncoder(32), PyramidChannels = 8, ClassNames = Classes, PredictedLabelColumnName = "PredictedLabel",
                OnnxModelFile = written, Training = new DenseTrainingOptions { Epochs = 12, BatchSize = 4, Lr = 3e-3, BackboneLrScale = 1 },
            });
            Model = Inputs(Ml).Append(Trainer).Fit(Data);
            var zip = Path.Combine(Dir, "seg.zip");
            Ml.Model.Save(Model, Data.Schema, zip);
            Onnx = Path.Combine(Dir, "moved.onnx");
            File.Move(written, Onnx);   // the saved model carries the ONNX bytes
            Reloaded = new MLContext().Model.Load(zip, out _);
        }

        public void Dispose()
        {
            Trainer.TrainedModel?.Dispose();
            Directory.Delete(Dir, true);
        }
    }

    static uint[][] Masks(IDataView scored, string column = "PredictedMask") => scored.GetColumn<VBuffer<uint>>(column).Select(v => v.DenseValues().ToArray()).ToArray();

    [Fact]
    public void FitReturnsVariableSizeClassIdsAtEachInputImageSize()
    {
        var scored = t.Model.Transform(t.Data);
        var type = Assert.IsType<VectorDataViewType>(scored.Schema["PredictedMask"].Type);
        Assert.False(type.IsKnownSize);
        Assert.Equal(NumberDataViewType.UInt32, type.ItemType);
        Assert.DoesNotContain(scored.Schema, c => c.Name.StartsWith("MaeSegmentation.") || c.Name.StartsWith("MaeDetection.") || c.Name.StartsWith("seg_") || c.Name.StartsWith("det_") || c.Name.StartsWith("mae_"));
        var masks = Masks(scored);
        Assert.Equal(t.Images.Count, masks.Length);
        for (int i = 0; i < masks.Length; i++) Assert.Equal(t.Images[i].Width * t.Images[i].Height, masks[i].Length);
        Assert.All(masks.SelectMany(m => m), v => Assert.InRange(v, 0u, 2u));

        // the class names as keys: class id i is key i + 1, key values the names
        var label = scored.Schema["PredictedLabel"];
        var key = Assert.IsType<KeyDataViewType>(Assert.IsType<VectorDataViewType>(label.Type).ItemType);
        Assert.Equal(3ul, key.Count);
        VBuffer<ReadOnlyMemory<char>> names = default;
        label.GetKeyValues(ref names);
        Assert.Equal(Classes, names.DenseValues().Select(n => n.ToString()));
        var keys = scored.GetColumn<VBuffer<uint>>("PredictedLabel").Select(v => v.DenseValues().ToArray()).ToArray();
        Assert.Equal(masks.SelectMany(m => m).Select(v => v + 1), keys.SelectMany(k => k));

        var metrics = t.Trainer.Evaluate(scored);
        output.WriteLine($"{string.Join(", ", t.Images.Select(i => $"{i.Width}x{i.Height}"))}: masks of those sizes; training data mIoU {metrics.MeanIoU:P1}, " +
                         $"pixel accuracy {metrics.PixelAccuracy:P1} over {metrics.Pixels} labelled pixels; classes predicted {string.Join(", ", masks.SelectMany(m => m).Distinct().Order())}");
        foreach (var line in t.Log.TakeLast(3)) output.WriteLine(line);
        Assert.True(metrics.PixelAccuracy > 0.5, $"pixel accuracy {metrics.PixelAccuracy:P1}");
    }

    [Fact]
    public void MLNetChainAndTorchSharpGiveIdenticalClassMapsFreshReloadedAndFromTheOnnxFile()
    {
        var torch = t.Trainer.Predict(t.Loaded);
        var fromFile = Inputs(t.Ml).Append(t.Ml.Transforms.ApplyMaeSegmenter(t.Onnx, predictedLabelColumnName: "PredictedLabel")).Fit(t.Data);
        foreach (var (name, model) in new[] { ("fresh", t.Model), ("reloaded", t.Reloaded), ("ApplyMaeSegmenter", fromFile) })
        {
            var masks = Masks(model.Transform(t.Data));
            long pixels = 0, same = 0;
            for (int r = 0; r < masks.Length; r++)
            {
                Assert.Equal(torch[r].Length, masks[r].Length);
                pixels += masks[r].Length;
                same += masks[r].Zip(torch[r]).Count(p => p.First == p.Second);
            }
            output.WriteLine($"{name}: {masks.Length} rows, {same}/{pixels} pixels identical to TorchSharp's class map resized the same way");
            Assert.Equal(pixels, same);
        }
        Assert.Equal(Classes, fromFile.Transform(t.Data).Schema["PredictedLabel"].KeyValueNames());
    }

    [Fact]
    public void SaveAndLoadRoundTripGivesIdenticalColumns()
    {
        var fresh = t.Model.Transform(t.Data);
        var reloaded = t.Reloaded.Transform(t.Data);
        Assert.Equal(Masks(fresh).SelectMany(m => m), Masks(reloaded).SelectMany(m => m));
        Assert.Equal(fresh.Schema["PredictedMask"].Type, reloaded.Schema["PredictedMask"].Type);
        Assert.Equal(fresh.Schema["PredictedLabel"].Type, reloaded.Schema["PredictedLabel"].Type);
        Assert.Equal(fresh.Schema.Select(c => c.Name), reloaded.Schema.Select(c => c.Name));
    }

    [Fact]
    public void OutputSchemaNamesTheColumnsTheChainGives()
    {
        var shapeOf = typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic, [typeof(DataViewSchema)])!;
        var shape = t.Trainer.GetOutputSchema((SchemaShape)shapeOf.Invoke(null, [t.Loaded.Schema])!);
        var mask = shape.Single(c => c.Name == "PredictedMask");
        Assert.Equal(SchemaShape.Column.VectorKind.VariableVector, mask.Kind);
        Assert.Equal(NumberDataViewType.UInt32, mask.ItemType);
        Assert.True(shape.Single(c => c.Name == "PredictedLabel").IsKey);
        Assert.DoesNotContain(shape, c => c.Name.StartsWith("MaeSegmentation.") || c.Name.StartsWith("seg_") || c.Name.StartsWith("mae_"));
    }

    [Fact]
    public void GreyPngMasksReadThroughLoadImagesGiveTheWrittenClassIds()
    {
        var column = t.Loaded.Schema["Mask"];
        using (var cursor = t.Loaded.GetRowCursor([column]))
        {
            var get = cursor.GetGetter<MLImage>(column);
            MLImage image = null!;
            int i = 0;
            for (; cursor.MoveNext(); i++)
            {
                get(ref image);
                var ids = MaeSemanticSegmentationTrainer.MaskClassIds(image, i);
                Assert.Equal(SegmentationDataset.ReadMask(t.Images[i].Mask, out int w, out int h), ids);
                Assert.Equal((t.Images[i].Width, t.Images[i].Height), (w, h));
                Assert.Contains((byte)255, ids);
            }
            Assert.Equal(t.Images.Count, i);
        }
        // a colour image is refused with a message naming masks
        using var colour = MLImage.CreateFromFile(t.Images[0].Image);
        var e = Assert.Throws<InvalidDataException>(() => MaeSemanticSegmentationTrainer.MaskClassIds(colour, 0));
        Assert.Contains("not grey", e.Message);
    }

    [Fact]
    public void SimpleArgumentOverloadSetsTheColumns()
    {
        var ml = new MLContext(0);
        var trainer = ml.MulticlassClassification.Trainers.MaeSemanticSegmentation(maskColumnName: "M", imageColumnName: "I", numClasses: 5, ignoreValue: 0, epochs: 3, batchSize: 2);
        var o = (MaeSemanticSegmentationOptions)typeof(MaeSemanticSegmentationTrainer).GetField("options", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!.GetValue(trainer)!;
        Assert.Equal(("M", "I", 5, 0, 3, 2), (o.MaskColumnName, o.ImageColumnName, o.NumClasses, o.IgnoreValue, o.Training.Epochs, o.Training.BatchSize));
        Assert.Equal(("PredictedMask", null), (o.PredictedMaskColumnName, o.PredictedLabelColumnName));
        Assert.Null(o.Seed);
        Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.MaeSemanticSegmentation(new MaeSemanticSegmentationOptions { NumClasses = 3, ClassNames = ["a", "b"] }));
        Assert.Throws<FileNotFoundException>(() => ml.Transforms.ApplyMaeSegmenter(Path.Combine(t.Dir, "missing.onnx")));
    }
}

/// <summary>The segmentation trainer takes the catalog's own MLContext, as the classifier and detector do: seed (same context seed, same
/// masks), log (MLContext.Log and an ILogger), cancellation (CancelExecution before Fit, the option's token during training), and a GPU
/// asked for with fallback scores on a machine without one.</summary>
[Collection("TorchGlobalRng")]
public sealed class SemanticSegmentationContextTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = TestImages.TempDir("seg-context");
    public void Dispose() => Directory.Delete(dir, true);

    static MaeSemanticSegmentationOptions Tiny(int epochs) => new()
    {
        Encoder = DenseTestData.TinyEncoder(32), PyramidChannels = 8, Head = SegmentationHeadKind.Linear, NumClasses = 3,
        Training = new DenseTrainingOptions { Epochs = epochs, BatchSize = 4 },
    };

    static IDataView Loaded(MLContext ml, List<SemanticSegmentationTrainerTests.MaskImage> images)
    {
        var data = ml.Data.LoadFromEnumerable(images.Select(i => new SemanticSegmentationTrainerTests.Row { ImagePath = i.Image, MaskPath = i.Mask }));
        return ml.Transforms.LoadImages("Image", null, "ImagePath").Append(ml.Transforms.LoadImages("Mask", null, "MaskPath")).Fit(data).Transform(data);
    }

    [Fact]
    public void UsesTheCatalogsContextForSeedLogAndCancellation()
    {
        var images = SemanticSegmentationTrainerTests.Write(Path.Combine(dir, "images"), 6, seed: 1);
        uint[] Run(int seed, List<string> log, List<string>? logger = null, int? gpu = null)
        {
            var ml = new MLContext(seed);
            ml.Log += (_, e) => { if (e.Message.Contains("MaeSemanticSegmentation")) lock (log) log.Add(e.Message); };
            var data = Loaded(ml, images);
            var trainer = ml.MulticlassClassification.Trainers.MaeSemanticSegmentation(Tiny(2) with { Logger = logger is null ? null : new ListLogger(logger), GpuDeviceId = gpu });
            var model = trainer.Fit(data);
            using (trainer.TrainedModel) { }
            return model.Transform(data).GetColumn<VBuffer<uint>>("PredictedMask").SelectMany(v => v.DenseValues()).ToArray();
        }
        List<string> log = [], logger = [];
        var a = Run(3, log, logger);
        var b = Run(3, [], gpu: 0);
        foreach (var line in log) output.WriteLine(line);
        Assert.Equal(a, b);
        Assert.Equal(images.Sum(i => i.Width * i.Height), a.Length);
        Assert.Contains(log, l => l.Contains("epoch 2/2: loss"));
        Assert.Contains(logger, l => l.StartsWith("epoch 2/2: loss"));

        var data = Loaded(new MLContext(0), images);
        var cancelled = new MLContext(0);
        typeof(MLContext).GetMethod("CancelExecution", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)!
            .Invoke(cancelled, null);
        Assert.ThrowsAny<OperationCanceledException>(() => cancelled.MulticlassClassification.Trainers.MaeSemanticSegmentation(Tiny(50)).Fit(data));

        using var source = new CancellationTokenSource();
        List<string> lines = [];
        var trainer = new MLContext(0).MulticlassClassification.Trainers.MaeSemanticSegmentation(Tiny(50) with
        {
            CancellationToken = source.Token, Logger = new ListLogger(lines, l => { if (l.StartsWith("epoch 1/")) source.Cancel(); }),
        });
        Assert.ThrowsAny<OperationCanceledException>(() => trainer.Fit(data));
        Assert.Null(trainer.TrainedModel);
        Assert.Contains(lines, l => l.StartsWith("epoch 1/50"));
        Assert.DoesNotContain(lines, l => l.StartsWith("epoch 2/50"));
    }

    sealed class ListLogger(List<string> lines, Action<string>? also = null) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = formatter(state, exception);
            lock (lines) lines.Add(line);
            also?.Invoke(line);
        }
    }
}

static class KeyValuesExtensions
{
    public static string[] KeyValueNames(this DataViewSchema.Column column)
    {
        VBuffer<ReadOnlyMemory<char>> names = default;
        column.GetKeyValues(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }
}
