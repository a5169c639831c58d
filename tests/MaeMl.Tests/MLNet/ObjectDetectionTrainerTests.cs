using MaeMl.Detection;
using MaeMl.Training;
using MaeMl.MLNet;
using Microsoft.Extensions.Logging;
using Microsoft.ML;
using Microsoft.ML.Data;
using Xunit;
using Xunit.Abstractions;

namespace MaeMl.Tests.MLNet;

/// <summary>
/// The ML.NET object-detection trainer: ML.NET's column names and types (variable-size vectors a schema-driven consumer can
/// save), keys like the label, boxes in pixels of the original (non-square, differently sized) images, at most
/// MaxDetections boxes an image, and the same detections and AP from the ML.NET chain (fresh and after Save/Load) as from
/// the TorchSharp model with the C# post-processing. Runs alone: training seeds and draws from torch's global generator.
/// </summary>
[Collection("TorchGlobalRng")]
public sealed class ObjectDetectionTrainerTests(ObjectDetectionTrainerTests.Trained t, ITestOutputHelper output) : IClassFixture<ObjectDetectionTrainerTests.Trained>
{
    public sealed class Row
    {
        public string ImagePath { get; set; } = "";
        public string[] LabelNames { get; set; } = [];
        public float[] BoundingBoxes { get; set; } = [];
    }

    static Row ToRow(DenseTestData.BoxImage b) => new() { ImagePath = b.Path, LabelNames = b.Names, BoundingBoxes = b.Boxes };

    static IEstimator<ITransformer> Inputs(MLContext ml) => ml.Transforms.Conversion.MapValueToKey("Label", "LabelNames")
        .Append(ml.Transforms.LoadImages("Image", null, "ImagePath"));

    /// <summary>One detector trained for the whole class: 16 images of 24..80 px (no two sides equal), two classes, model input 32 px.</summary>
    public sealed class Trained : IDisposable
    {
        public readonly string Dir = TestImages.TempDir("det-mlnet");
        public readonly MLContext Ml = new(seed: 0);
        public readonly List<DenseTestData.BoxImage> Images;
        public readonly IDataView Data;
        /// <summary><see cref="Data"/> with the Label keys and the loaded Image (the trainer's input).</summary>
        public readonly IDataView Loaded;
        public readonly MaeObjectDetectionTrainer Trainer;
        public readonly ITransformer Model, Reloaded;
        public readonly string Zip;

        public Trained()
        {
            Images = DenseTestData.WriteBoxImages(Path.Combine(Dir, "images"), 16, ["square", "circle"]);
            Data = Ml.Data.LoadFromEnumerable(Images.Select(ToRow));
            Loaded = Inputs(Ml).Fit(Data).Transform(Data);
            var onnx = Path.Combine(Dir, "det.onnx");
            Trainer = Ml.MulticlassClassification.Trainers.MaeObjectDetection(new MaeObjectDetectionOptions
            {
                Seed = 0, BoundingBoxColumnName = "BoundingBoxes", Encoder = DenseTestData.TinyEncoder(32), PyramidChannels = 8, HeadConvs = 1, OnnxModelFile = onnx,
                Training = new DenseTrainingOptions { Epochs = 15, BatchSize = 4, Lr = 2e-3, BackboneLrScale = 1 },
            });
            Model = Inputs(Ml).Append(Trainer).Fit(Data);
            Zip = Path.Combine(Dir, "det.zip");
            Ml.Model.Save(Model, Data.Schema, Zip);
            File.Delete(onnx);   // the saved model carries the ONNX bytes
            Reloaded = new MLContext().Model.Load(Zip, out _);
        }

        public void Dispose()
        {
            Trainer.TrainedModel?.Dispose();
            Directory.Delete(Dir, true);
        }
    }

    sealed record Scored(uint[][] Keys, float[][] Scores, float[][] Boxes);

    static Scored Read(IDataView scored) => new(
        scored.GetColumn<VBuffer<uint>>("PredictedLabel").Select(v => v.DenseValues().ToArray()).ToArray(),
        scored.GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray(),
        scored.GetColumn<VBuffer<float>>("PredictedBoundingBoxes").Select(v => v.DenseValues().ToArray()).ToArray());

    /// <summary>
    /// <paramref name="reference"/>'s boxes in the order of <paramref name="other"/>'s, which may differ only among boxes whose
    /// scores are within 1e-5 of each other: ONNX Runtime's scores are about 1e-7 from TorchSharp's, so two detections of nearly
    /// equal score can come out in either order. Each box of <paramref name="other"/> gets the unused reference box of the same
    /// label, a score within 1e-5 and the nearest corners (after scaling the reference by <paramref name="sx"/>, <paramref name="sy"/>).
    /// </summary>
    static DetectedBox[] InOrderOf(DetectedBox[] reference, DetectedBox[] other, float sx = 1, float sy = 1)
    {
        Assert.Equal(reference.Length, other.Length);
        var used = new bool[reference.Length];
        return other.Select((o, i) =>
        {
            var best = Enumerable.Range(0, reference.Length)
                .Where(j => !used[j] && reference[j].Label == o.Label && Math.Abs(reference[j].Score - o.Score) <= 1e-5f)
                .OrderBy(j => new[] { Math.Abs(o.X0 - reference[j].X0 * sx), Math.Abs(o.Y0 - reference[j].Y0 * sy), Math.Abs(o.X1 - reference[j].X1 * sx), Math.Abs(o.Y1 - reference[j].Y1 * sy) }.Max())
                .DefaultIfEmpty(-1).First();
            Assert.True(best >= 0, $"no box of label {o.Label} and score {o.Score} near position {i}");
            used[best] = true;
            return reference[best];
        }).ToArray();
    }

    static DetectedBox[][] ToBoxes(Scored s) => s.Keys.Select((k, r) => k.Select((key, i) =>
        new DetectedBox(s.Boxes[r][4 * i], s.Boxes[r][4 * i + 1], s.Boxes[r][4 * i + 2], s.Boxes[r][4 * i + 3], (int)key - 1, s.Scores[r][i])).ToArray()).ToArray();

    [Fact]
    public void FitReturnsMLNetColumnsWithTheLabelKeyType()
    {
        var scored = t.Model.Transform(t.Data);
        var predicted = scored.Schema["PredictedLabel"];
        var key = Assert.IsType<KeyDataViewType>(Assert.IsType<VectorDataViewType>(predicted.Type).ItemType);
        Assert.Equal(2ul, key.Count);
        Assert.Equal(scored.Schema["Label"].Type, predicted.Type);   // same key type as the label
        Assert.DoesNotContain(scored.Schema, c => c.Name.StartsWith("MaeDetection.") || c.Name.StartsWith("det_") || c.Name.StartsWith("mae_"));
        var s = Read(scored);
        Assert.All(Enumerable.Range(0, t.Images.Count), i => { Assert.Equal(4 * s.Scores[i].Length, s.Boxes[i].Length); Assert.Equal(s.Scores[i].Length, s.Keys[i].Length); });
        Assert.All(s.Keys.SelectMany(k => k), k => Assert.InRange(k, 1u, 2u));
        Assert.All(s.Scores, row => Assert.Equal(row.OrderByDescending(x => x), row));   // best first
        Assert.True(s.Scores.Sum(r => r.Length) > 0, "the trained model should detect something");

        var r = Read(t.Reloaded.Transform(t.Data));
        Assert.Equal(s.Scores.SelectMany(x => x), r.Scores.SelectMany(x => x));
        Assert.Equal(s.Keys.SelectMany(x => x), r.Keys.SelectMany(x => x));
        Assert.Equal(s.Boxes.SelectMany(x => x), r.Boxes.SelectMany(x => x));
    }

    [Fact]
    public void OutputColumnsAreVariableSizeVectorsThatSaveAsBinaryRoundTrips()
    {
        foreach (var model in new[] { t.Model, t.Reloaded })
        {
            var scored = model.Transform(t.Data);
            foreach (var name in new[] { "PredictedLabel", "Score", "PredictedBoundingBoxes" })
                Assert.False(Assert.IsType<VectorDataViewType>(scored.Schema[name].Type).IsKnownSize, $"{name} is {scored.Schema[name].Type}");
            Assert.Equal(NumberDataViewType.Single, ((VectorDataViewType)scored.Schema["Score"].Type).ItemType);
            Assert.Equal(NumberDataViewType.Single, ((VectorDataViewType)scored.Schema["PredictedBoundingBoxes"].Type).ItemType);

            var kept = t.Ml.Transforms.SelectColumns("PredictedLabel", "Score", "PredictedBoundingBoxes").Fit(scored).Transform(scored);
            using var stream = new MemoryStream();
            t.Ml.Data.SaveAsBinary(kept, stream);
            var path = Path.Combine(t.Dir, $"scored-{Guid.NewGuid():N}.idv");
            File.WriteAllBytes(path, stream.ToArray());
            var back = Read(t.Ml.Data.LoadFromBinary(path));
            var want = Read(scored);
            Assert.Equal(want.Scores.SelectMany(x => x), back.Scores.SelectMany(x => x));
            Assert.Equal(want.Boxes.SelectMany(x => x), back.Boxes.SelectMany(x => x));
            Assert.Equal(want.Keys.SelectMany(x => x), back.Keys.SelectMany(x => x));
            Assert.Equal(want.Scores.Select(x => x.Length), back.Scores.Select(x => x.Length));
        }
    }

    [Fact]
    public void MLNetChainAndTorchSharpPostprocessGiveTheSameDetectionsAndAP()
    {
        var torch = t.Trainer.Predict(t.Loaded);
        var apTorch = DetectionMetrics.Evaluate(torch, t.Images.Select(i => i.Boxes.Chunk(4).Select((b, j) =>
            new BoxAnnotation(b[0], b[1], b[2], b[3], i.Names[j] == "square" ? 0 : 1)).ToArray()).ToList(), 2);
        foreach (var (name, model) in new[] { ("fresh", t.Model), ("reloaded", t.Reloaded) })
        {
            var scored = model.Transform(t.Data);
            var ml = ToBoxes(Read(scored));
            int rows = 0, boxes = 0;
            float boxDiff = 0, scoreDiff = 0;
            for (int r = 0; r < ml.Length; r++)
            {
                var want = InOrderOf(torch[r], ml[r]);
                for (int i = 0; i < ml[r].Length; i++)
                {
                    var (a, b) = (want[i], ml[r][i]);
                    boxDiff = new[] { boxDiff, Math.Abs(a.X0 - b.X0), Math.Abs(a.Y0 - b.Y0), Math.Abs(a.X1 - b.X1), Math.Abs(a.Y1 - b.Y1) }.Max();
                    scoreDiff = Math.Max(scoreDiff, Math.Abs(a.Score - b.Score));
                }
                rows++; boxes += ml[r].Length;
            }
            Assert.True(boxDiff < 1e-2f && scoreDiff < 1e-4f, $"{name}: boxes differ by up to {boxDiff} px, scores by {scoreDiff}");
            var apMl = t.Trainer.Evaluate(scored);
            Assert.Equal(apTorch.MAP, apMl.MAP, 6);
            Assert.Equal(apTorch.AP50, apMl.AP50, 6);
            output.WriteLine($"{name}: {rows} rows, {boxes} boxes with the same labels, in the same order but for scores within 1e-5; max box diff {boxDiff:G3} px, max score diff {scoreDiff:G3}; " +
                             $"mAP {apMl.MAP:F4} (TorchSharp {apTorch.MAP:F4}), AP50 {apMl.AP50:F4} (TorchSharp {apTorch.AP50:F4})");
        }
    }

    [Fact]
    public void PredictedBoxesAreInPixelsOfTheOriginalImage()
    {
        // (1) the TorchSharp model's boxes in model pixels (FcosPostprocess without image sizes) on ML.NET's stretched pixels
        var model = t.Trainer.TrainedModel!;
        int s = model.Config.Encoder.ImageSize;
        var stretched = t.Ml.Transforms.ResizeImages("Small", s, s, "Image", Microsoft.ML.Transforms.Image.ImageResizingEstimator.ResizingKind.Fill)
            .Append(t.Ml.Transforms.ExtractPixels("Pixels", "Small", interleavePixelColors: false, outputAsFloatArray: true));
        var pixels = stretched.Fit(t.Loaded).Transform(t.Loaded).GetColumn<VBuffer<float>>("Pixels").SelectMany(v => v.DenseValues()).ToArray();
        List<DetectedBox[]> inModelPixels;
        using (TorchSharp.torch.no_grad())
        using (var images = TorchSharp.torch.tensor(pixels).reshape(t.Images.Count, 3, s, s))
        using (var normalized = MaeMl.Tests.Onnx.OnnxTestModels.Normalize(images))
        using (var o = model.forward(normalized))
            inModelPixels = FcosPostprocess.Decode(model, o);
        var ml = ToBoxes(Read(t.Reloaded.Transform(t.Data)));
        float worst = 0;
        int compared = 0;
        for (int r = 0; r < ml.Length; r++)
        {
            var (w, h) = (t.Images[r].Width, t.Images[r].Height);
            var want = InOrderOf(inModelPixels[r], ml[r], (float)w / s, (float)h / s);
            for (int i = 0; i < ml[r].Length; i++)
            {
                var (m, e) = (ml[r][i], want[i]);
                worst = new[] { worst, Math.Abs(m.X0 - e.X0 * w / s), Math.Abs(m.Y0 - e.Y0 * h / s), Math.Abs(m.X1 - e.X1 * w / s), Math.Abs(m.Y1 - e.Y1 * h / s) }.Max();
                Assert.InRange(m.X1, 0, w); Assert.InRange(m.Y1, 0, h);
            }
            compared++;
        }
        Assert.True(worst <= 1f, $"boxes are up to {worst} px from the model's boxes scaled to the image");

        // (2) an image and its copy with every pixel repeated 2 x 3 times: the same pixels reach the model, the boxes scale by 2 x 3
        var pairs = t.Images.Take(4).Select((img, i) => (img, DenseTestData.Upscaled(img, 2, 3, Path.Combine(t.Dir, $"big{i}.png")))).ToList();
        var data = t.Ml.Data.LoadFromEnumerable(pairs.SelectMany(p => new[] { ToRow(p.img), ToRow(p.Item2) }));
        var both = ToBoxes(Read(t.Reloaded.Transform(data)));
        float worstCopy = 0;
        for (int p = 0; p < pairs.Count; p++)
        {
            var (small, big) = (both[2 * p], both[2 * p + 1]);
            Assert.Equal(small.Select(b => b.Label), big.Select(b => b.Label));
            for (int i = 0; i < small.Length; i++)
                worstCopy = new[] { worstCopy, Math.Abs(big[i].X0 - 2 * small[i].X0), Math.Abs(big[i].Y0 - 3 * small[i].Y0), Math.Abs(big[i].X1 - 2 * small[i].X1), Math.Abs(big[i].Y1 - 3 * small[i].Y1) }.Max();
        }
        Assert.True(worstCopy <= 1f, $"the upscaled copies' boxes are up to {worstCopy} px from 2 x 3 times the originals'");
        output.WriteLine($"{compared} images ({string.Join(", ", t.Images.Select(i => $"{i.Width}x{i.Height}"))}): boxes within {worst:G3} px of the model's boxes x (W/S, H/S); " +
                         $"{pairs.Count} 2x3 copies: within {worstCopy:G3} px of 2x3 the originals' boxes ({both.Sum(b => b.Length)} boxes)");
    }

    /// <summary>ApplyMaeDetector on the trained model's exported .onnx (class names from its metadata), without training, gives the
    /// trained chain's columns: same names and types (keys of the label's type), same values, also after Save/Load.</summary>
    [Fact]
    public void DetectorFromTheExportedOnnxFileGivesTheTrainedChainsColumns()
    {
        var onnx = Path.Combine(t.Dir, $"exported-{Guid.NewGuid():N}.onnx");
        DetectionOnnxExporter.Export(t.Trainer.TrainedModel!, onnx, ["square", "circle"]);
        var estimator = t.Ml.Transforms.ApplyMaeDetector(onnx);
        Assert.Equal(32, estimator.ImageSize);
        Assert.Equal(["square", "circle"], estimator.ClassNames);
        var fromFile = Inputs(t.Ml).Append(estimator).Fit(t.Data);
        var zip = Path.Combine(t.Dir, $"from-onnx-{Guid.NewGuid():N}.zip");
        t.Ml.Model.Save(fromFile, t.Data.Schema, zip);
        File.Delete(onnx);
        var reloaded = new MLContext().Model.Load(zip, out _);
        var trained = t.Model.Transform(t.Data);
        var want = Read(trained);
        foreach (var (name, model) in new[] { ("ApplyMaeDetector", fromFile), ("ApplyMaeDetector reloaded", reloaded) })
        {
            var scored = model.Transform(t.Data);
            Assert.Equal(trained.Schema.Select(c => (c.Name, c.Type)), scored.Schema.Select(c => (c.Name, c.Type)));
            var got = Read(scored);
            Assert.Equal(want.Keys.SelectMany(x => x), got.Keys.SelectMany(x => x));
            Assert.Equal(want.Scores.SelectMany(x => x), got.Scores.SelectMany(x => x));
            Assert.Equal(want.Boxes.SelectMany(x => x), got.Boxes.SelectMany(x => x));
            VBuffer<ReadOnlyMemory<char>> keyNames = default;
            scored.Schema["PredictedLabel"].GetKeyValues(ref keyNames);
            Assert.Equal(["square", "circle"], keyNames.DenseValues().Select(n => n.ToString()));
            output.WriteLine($"{name}: {got.Scores.Sum(r => r.Length)} boxes on {got.Scores.Length} rows, identical to the trained chain's");
        }
        Assert.Throws<InvalidDataException>(() => t.Ml.Transforms.ApplyMaeDetector(zip));
    }

    [Fact]
    public void DefaultOptionsUseMLNetColumnNames()
    {
        var o = new MaeObjectDetectionOptions();
        Assert.Equal(("Label", "Image", "BoundingBoxes"), (o.LabelColumnName, o.ImageColumnName, o.BoundingBoxColumnName));
        Assert.Equal(("PredictedLabel", "Score", "PredictedBoundingBoxes"), (o.PredictedLabelColumnName, o.ScoreColumnName, o.PredictedBoundingBoxColumnName));
    }
}

/// <summary>The per-image cap across classes, on a barely trained detector (every location of every class is a candidate).</summary>
[Collection("TorchGlobalRng")]
public sealed class ObjectDetectionCapTests : IDisposable
{
    readonly string dir = TestImages.TempDir("det-cap");
    public void Dispose() => Directory.Delete(dir, true);

    [Fact]
    public void AtMost100DetectionsPerImageAcrossClassesByDefault()
    {
        var images = DenseTestData.WriteBoxImages(Path.Combine(dir, "images"), 4, ["a", "b", "c"]);
        var ml = new MLContext(seed: 0);
        var data = ml.Data.LoadFromEnumerable(images.Select(b => new ObjectDetectionTrainerTests.Row { ImagePath = b.Path, LabelNames = b.Names, BoundingBoxes = b.Boxes }));
        var trainer = ml.MulticlassClassification.Trainers.MaeObjectDetection(new MaeObjectDetectionOptions
        {
            Seed = 0, BoundingBoxColumnName = "BoundingBoxes", Encoder = DenseTestData.TinyEncoder(32), PyramidChannels = 8, HeadConvs = 1,
            OnnxModelFile = Path.Combine(dir, "det.onnx"), Training = new DenseTrainingOptions { Epochs = 1, BatchSize = 4 },
        });
        var model = ml.Transforms.Conversion.MapValueToKey("Label", "LabelNames").Append(ml.Transforms.LoadImages("Image", null, "ImagePath")).Append(trainer).Fit(data);
        using (trainer.TrainedModel) { }
        var scored = model.Transform(data);
        var counts = scored.GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().Count()).ToArray();
        var boxes = scored.GetColumn<VBuffer<float>>("PredictedBoundingBoxes").Select(v => v.DenseValues().Count()).ToArray();
        Assert.All(counts, c => Assert.Equal(100, c));   // 340 locations x 3 classes above the threshold: capped at 100 in all
        Assert.Equal(counts.Select(c => 4 * c), boxes);
    }
}

/// <summary>
/// The detector takes the catalog's own MLContext, as ML.NET's trainers and the MAE classifier do: its seed (two fits under the
/// same context seed are identical, another seed differs), its log (progress lines in MLContext.Log, also to an ILogger), its
/// cancellation (CancelExecution, or the option's token during training: OperationCanceledException); no temporary ONNX file stays.
/// </summary>
[Collection("TorchGlobalRng")]
public sealed class ObjectDetectionContextTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = TestImages.TempDir("det-context");
    public void Dispose() => Directory.Delete(dir, true);

    static MaeObjectDetectionOptions Tiny(int epochs) => new()
    {
        Encoder = DenseTestData.TinyEncoder(32), PyramidChannels = 8, HeadConvs = 1, Training = new DenseTrainingOptions { Epochs = epochs, BatchSize = 4 },
    };

    static IDataView Loaded(MLContext ml, List<DenseTestData.BoxImage> images)
    {
        var data = ml.Data.LoadFromEnumerable(images.Select(b => new ObjectDetectionTrainerTests.Row { ImagePath = b.Path, LabelNames = b.Names, BoundingBoxes = b.Boxes }));
        return ml.Transforms.Conversion.MapValueToKey("Label", "LabelNames").Append(ml.Transforms.LoadImages("Image", null, "ImagePath")).Fit(data).Transform(data);
    }

    [Fact]
    public void UsesTheCatalogsContextForSeedLogAndCancellationAndLeavesNoTemporaryFiles()
    {
        var images = DenseTestData.WriteBoxImages(Path.Combine(dir, "images"), 8, ["square", "circle"]);
        var temp = Path.GetTempPath();
        var before = Directory.GetFiles(temp, "maeml-detector-*").ToHashSet();
        float[] Run(int seed, List<string> log, List<string>? logger = null)
        {
            var ml = new MLContext(seed);
            ml.Log += (_, e) => { if (e.Message.Contains("MaeObjectDetection")) lock (log) log.Add(e.Message); };
            var data = Loaded(ml, images);
            var trainer = ml.MulticlassClassification.Trainers.MaeObjectDetection(Tiny(2) with { Logger = logger is null ? null : new ListLogger(logger) });
            var model = trainer.Fit(data);
            using (trainer.TrainedModel) { }
            var scored = model.Transform(data);
            return scored.GetColumn<VBuffer<float>>("Score").SelectMany(v => v.DenseValues())
                .Concat(scored.GetColumn<VBuffer<float>>("PredictedBoundingBoxes").SelectMany(v => v.DenseValues())).ToArray();
        }
        List<string> log = [], logger = [];
        var a = Run(3, log, logger);
        var b = Run(3, []);
        var c = Run(4, []);
        foreach (var line in log) output.WriteLine(line);
        Assert.NotEmpty(a);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Contains(log, l => l.Contains("epoch 2/2: loss"));
        Assert.Contains(logger, l => l.StartsWith("epoch 2/2: loss"));
        Assert.DoesNotContain(Directory.GetFiles(temp, "maeml-detector-*"), f => !before.Contains(f));

        // cancellation through the context (what ML.NET's own components use), before training
        var cancelled = new MLContext(0);
        var data = Loaded(new MLContext(0), images);   // loaded by another context: ML.NET's own transforms would stop on the cancelled one
        typeof(MLContext).GetMethod("CancelExecution", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)!
            .Invoke(cancelled, null);
        var byContext = Assert.ThrowsAny<OperationCanceledException>(() => cancelled.MulticlassClassification.Trainers.MaeObjectDetection(Tiny(50)).Fit(data));
        output.WriteLine($"context: {byContext.Message}");

        // through the option's token, during training (cancelled once the first epoch is logged)
        using var source = new CancellationTokenSource();
        List<string> lines = [];
        var ml = new MLContext(0);
        var trainer = ml.MulticlassClassification.Trainers.MaeObjectDetection(Tiny(50) with
        {
            CancellationToken = source.Token, Logger = new ListLogger(lines, l => { if (l.StartsWith("epoch 1/")) source.Cancel(); }),
        });
        Assert.ThrowsAny<OperationCanceledException>(() => trainer.Fit(data));
        Assert.Null(trainer.TrainedModel);
        Assert.Contains(lines, l => l.StartsWith("epoch 1/50"));
        Assert.DoesNotContain(lines, l => l.StartsWith("epoch 2/50"));
        Assert.DoesNotContain(Directory.GetFiles(temp, "maeml-detector-*"), f => !before.Contains(f));
    }

    /// <summary>A GPU asked for with FallbackToCpu scores on the CPU when there is none (the device is resolved by OnnxDevice first, so
    /// this also holds with the CPU-only native package, whose missing CUDA entry point ML.NET's own fallback does not catch).</summary>
    [Fact]
    public void GpuDeviceWithFallbackScoresOnAMachineWithoutOne()
    {
        var images = DenseTestData.WriteBoxImages(Path.Combine(dir, "images"), 4, ["square", "circle"]);
        var ml = new MLContext(0);
        var data = Loaded(ml, images);
        var trainer = ml.MulticlassClassification.Trainers.MaeObjectDetection(Tiny(1) with { GpuDeviceId = 0, FallbackToCpu = true });
        var model = trainer.Fit(data);
        using (trainer.TrainedModel) { }
        var scores = model.Transform(data).GetColumn<VBuffer<float>>("Score").ToList();
        Assert.Equal(4, scores.Count);
        output.WriteLine($"providers {string.Join(", ", OnnxDevice.AvailableProviders())}; {scores.Sum(v => v.Length)} detections");
    }

    [Fact]
    public void SimpleArgumentOverloadSetsTheColumnsAndTheObsoleteOneStillWorks()
    {
        var ml = new MLContext(0);
        var trainer = ml.MulticlassClassification.Trainers.MaeObjectDetection(labelColumnName: "L", boundingBoxColumnName: "B", imageColumnName: "I", epochs: 3, batchSize: 2);
        var o = (MaeObjectDetectionOptions)typeof(MaeObjectDetectionTrainer).GetField("options", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!.GetValue(trainer)!;
        Assert.Equal(("L", "B", "I", 3, 2), (o.LabelColumnName, o.BoundingBoxColumnName, o.ImageColumnName, o.Training.Epochs, o.Training.BatchSize));
        Assert.Equal(("PredictedLabel", "Score", "PredictedBoundingBoxes"), (o.PredictedLabelColumnName, o.ScoreColumnName, o.PredictedBoundingBoxColumnName));
        Assert.Null(o.Seed);
#pragma warning disable CS0618 // the old overload, kept for one release
        Assert.NotNull(ml.MulticlassClassification.Trainers.MaeObjectDetection(ml, null));
#pragma warning restore CS0618
    }

    sealed class ListLogger(List<string> lines, Action<string>? also = null) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = formatter(state, exception);
            lock (lines) lines.Add(line);
            also?.Invoke(line);
        }
    }
}
