using MaeMl.Checkpoints;
using MaeMl.Data;
using MaeMl.Evaluation;
using MaeMl.Interop;
using MaeMl.Model;
using MaeMl.Training;
using Xunit;

namespace MaeMl.Tests.Training;

/// <summary>Runs alone: drop path draws from torch's global generator, which tests running in parallel would also draw from,
/// and the resume test compares losses bit for bit.</summary>
[CollectionDefinition("TorchGlobalRng", DisableParallelization = true)]
public sealed class TorchGlobalRngCollection;

/// <summary>Fine-tuning and linear probing end to end on tiny generated class folders and a tiny model.</summary>
[Collection("TorchGlobalRng")]
public class FinetunerTests
{
    static readonly MaeConfig Tiny = TestModels.Tiny;

    /// <summary>train/ and val/ folders of 3 classes, and a MAE checkpoint of the tiny config.</summary>
    static (string Train, string Val, string Pretrained) Data(int trainPerClass = 8)
    {
        var root = TestImages.TempDir("ft");
        var train = Path.Combine(root, "train");
        var val = Path.Combine(root, "val");
        TestImages.Write(train, 3 * trainPerClass, size: 20, classes: 3, seed: 1);
        TestImages.Write(val, 9, size: 16, classes: 3, seed: 2, format: SkiaSharp.SKEncodedImageFormat.Jpeg);
        TorchSharp.torch.manual_seed(3);
        using var mae = new MaskedAutoencoderViT(Tiny);
        var pretrained = Path.Combine(root, "pretrain.maeml");
        MaeCheckpoint.Save(pretrained, mae);
        return (train, val, pretrained);
    }

    static FinetuneOptions Options(string train, string val, string output, string? init) => FinetuneOptions.SmallImages(train, output) with
    {
        ValDir = val, Init = init, Model = init is null ? Tiny : null, Epochs = 2, WarmupEpochs = 0.5, BatchSize = 6, Seed = 5, Prefetch = 2,
    };

    static List<double> Losses(string output) => MetricsLog.ReadLoss(Path.Combine(output, "metrics.jsonl")).Select(x => x.Loss).ToList();

    [Fact]
    public void BFloat16FineTuningFollowsTheFloat32LossCurveAndKeepsFloat32Weights()
    {
        var (train, val, pretrained) = Data(trainPerClass: 16);
        string fp32 = TestImages.TempDir("ft-fp32"), bf16 = TestImages.TempDir("ft-bf16");
        var o = Options(train, val, fp32, pretrained) with { Epochs = 4, Mixup = MixupOptions.None, RandAugment = null, RandomErasingProb = 0 };
        new Finetuner(o, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        var logs = new List<string>();
        var result = new Finetuner(o with { OutputDir = bf16, Precision = TrainingPrecision.BFloat16 }, new ConsoleProgress(TextWriter.Null), logs.Add).Run();
        Assert.Contains(logs, l => l.Contains("BFloat16"));
        var a = Losses(fp32);
        var b = Losses(bf16);
        Assert.Equal(a.Count, b.Count);
        Assert.All(b, x => Assert.True(double.IsFinite(x)));
        double lastA = a.TakeLast(4).Average(), lastB = b.TakeLast(4).Average();
        Assert.True(Math.Abs(lastA - lastB) <= 0.05 * lastA, $"bf16 final loss {lastB:F4} vs fp32 {lastA:F4}");
        Assert.True(lastB < b.Take(4).Average(), "bf16 loss did not fall");
        Assert.NotEqual(a, b);   // the bfloat16 copy really ran the steps
        var (model, _) = ClassifierCheckpoint.Load(result.CheckpointPath);
        using (model) Assert.All(model.parameters(), p => Assert.Equal(TorchSharp.torch.ScalarType.Float32, p.dtype));
    }

    [Fact]
    public void FinetunesFromAMaeCheckpointAndWritesEverything()
    {
        var (train, val, pretrained) = Data();
        var output = TestImages.TempDir("ft-out");
        var result = new Finetuner(Options(train, val, output, pretrained), new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        Assert.Equal(2, result.EpochsDone);
        Assert.Equal(8, result.OptimizerSteps);
        Assert.Equal(new[] { "class0", "class1", "class2" }, result.ClassNames);
        Assert.NotNull(result.Validation);
        Assert.Equal(9, result.Validation!.Count);
        foreach (var file in new[] { "checkpoint-last.maeml", "checkpoint-best.maeml", "metrics.jsonl", "loss-curve.png", "accuracy-curve.png", "eval.json", "run.json" })
            Assert.True(File.Exists(Path.Combine(output, file)), file);

        var header = ClassifierCheckpoint.ReadHeader(result.CheckpointPath);
        Assert.Equal(3, header.Config.NumClasses);
        Assert.True(header.Config.GlobalPool);
        Assert.Equal(result.ClassNames, header.ClassNames);
        Assert.True(header.HasOptimizer);
        // the classifier checkpoint is a model file like any other, and a MAE loader refuses it with a clear message
        using var loaded = MaeModelFile.LoadClassifier(result.CheckpointPath);
        Assert.Equal(3, loaded.Config.NumClasses);
        var error = Assert.Throws<InvalidDataException>(() => MaeCheckpoint.LoadModel(result.CheckpointPath));
        Assert.Contains("classifier", error.Message);
        // evaluating the saved model reproduces the last validation
        var folder = ImageFolder.Labelled(val, classes: header.ClassNames);
        var loader = new PrefetchingBatchLoader(folder.Samples, SampleTransforms.ResizeCenterCrop(16, 1.0), 16, 4, shuffle: false, dropLast: false, seed: 0);
        var metrics = ClassifierEvaluation.Evaluate(loaded, loader, header.ClassNames);
        Assert.Equal(result.Validation.Top1, metrics.Top1, 12);
        Assert.Equal(result.Validation.MeanLoss, metrics.MeanLoss, 4);
    }

    /// <summary><c>EvalEvery</c>: validation after epochs 2 and 4 and after the last (5), none between; eval.json is the last epoch's.</summary>
    [Fact]
    public void EvalEveryValidatesEveryNthEpochAndTheLast()
    {
        var (train, val, pretrained) = Data(trainPerClass: 2);
        var output = TestImages.TempDir("ft-eval-every");
        var result = new Finetuner(Options(train, val, output, pretrained) with { Epochs = 5, EvalEvery = 2 }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        Assert.Equal(5, result.EpochsDone);
        var epochs = File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!)
            .Where(n => n["type"]?.GetValue<string>() == "epoch").ToList();
        Assert.Equal(5, epochs.Count);
        Assert.Equal(new[] { false, true, false, true, true }, epochs.Select(n => n["val_top1"] is not null));
        var last = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(output, "eval.json")))!;
        Assert.Equal(epochs[4]["val_top1"]!.GetValue<double>(), last["top1"]!.GetValue<double>(), 12);
        Assert.Throws<ArgumentException>(() => (Options(train, val, output, pretrained) with { EvalEvery = 0 }).Validate());
    }

    [Fact]
    public void ResumedRunReproducesTheUninterruptedOne()
    {
        var (train, val, _) = Data(trainPerClass: 6);
        var straight = TestImages.TempDir("ft-straight");
        new Finetuner(Options(train, val, straight, null), new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        var chunked = TestImages.TempDir("ft-chunked");
        var first = new Finetuner(Options(train, val, chunked, null) with { TimeLimit = TimeSpan.Zero }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        Assert.True(first.StoppedByTimeLimit);
        var resumed = new Finetuner(Options(train, val, chunked, null) with { Resume = "auto" }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        Assert.Equal(2, resumed.EpochsDone);
        var a = Losses(straight);
        var b = Losses(chunked);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++) Assert.Equal(a[i], b[i], 5);
    }

    [Fact]
    public void BadFoldersGiveClearErrorsAndUnreadableImagesAreSkipped()
    {
        var (train, val, pretrained) = Data(trainPerClass: 4);
        var single = TestImages.TempDir("ft-single");
        TestImages.Write(Path.Combine(single, "only"), 6, size: 16);
        var e = Assert.Throws<ArgumentException>(() => new Finetuner(Options(single, val, TestImages.TempDir("o"), pretrained) with { ValDir = null }, new ConsoleProgress(TextWriter.Null), _ => { }).Run());
        Assert.Contains("single class", e.Message);

        Directory.CreateDirectory(Path.Combine(train, "empty"));
        var empty = Assert.Throws<InvalidDataException>(() => new Finetuner(Options(train, val, TestImages.TempDir("o"), pretrained), new ConsoleProgress(TextWriter.Null), _ => { }).Run());
        Assert.Contains("contains no images", empty.Message);
        Directory.Delete(Path.Combine(train, "empty"));

        File.WriteAllText(Path.Combine(train, "class1", "broken.png"), "not an image");
        var logged = new List<string>();
        var result = new Finetuner(Options(train, val, TestImages.TempDir("o"), pretrained) with { Epochs = 1 }, new ConsoleProgress(TextWriter.Null), logged.Add).Run();
        Assert.Single(result.SkippedImages);
        Assert.Contains(logged, l => l.Contains("broken.png"));
        Assert.Throws<ArgumentException>(() => new Finetuner(Options(train, val, "o", null) with { Model = null }));
    }

    [Fact]
    public void LinearProbeTrainsAHeadOnFrozenFeaturesAndFoldsBatchNorm()
    {
        var (train, val, pretrained) = Data();
        foreach (var cache in new[] { true, false })
        {
            var output = TestImages.TempDir("lp-out");
            var options = new LinearProbeOptions
            {
                TrainDir = train, ValDir = val, OutputDir = output, Init = pretrained, Epochs = 4, WarmupEpochs = 1, BatchSize = 8,
                EvalCropPct = 1.0, CacheFeatures = cache, Optimizer = cache ? LinearProbeOptimizer.Lars : LinearProbeOptimizer.Sgd,
            };
            using var before = MaeModelFile.LoadClassifier(pretrained, new MaeLoadOptions { NumClasses = 3, GlobalPool = false });
            var result = new LinearProbe(options, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
            Assert.NotNull(result.Validation);
            var (model, header) = ClassifierCheckpoint.Load(result.CheckpointPath);
            using (model)
            {
                Assert.False(header.Config.GlobalPool);
                // the encoder is unchanged
                var original = before.state_dict();
                foreach (var (name, t) in model.state_dict())
                    if (!name.StartsWith("head.")) Assert.True(t.eq(original[name]).all().item<bool>(), name);
                // the folded head reproduces BatchNorm + linear: same validation accuracy from the images
                var folder = ImageFolder.Labelled(val, classes: header.ClassNames);
                var loader = new PrefetchingBatchLoader(folder.Samples, SampleTransforms.ResizeCenterCrop(16, 1.0), 16, 4, shuffle: false, dropLast: false, seed: 0);
                var metrics = ClassifierEvaluation.Evaluate(model, loader, header.ClassNames);
                Assert.Equal(result.Validation!.Top1, metrics.Top1, 12);
                Assert.Equal(result.Validation.MeanLoss, metrics.MeanLoss, 3);
            }
        }
    }

    /// <summary>Fine-tuning gets the run-folder protections of pretraining: one run per folder, and the best checkpoint is never
    /// written through a planted link.</summary>
    [Fact]
    public void AFineTuningRunFolderIsLockedAndItsFilesAreNotWrittenThroughLinks()
    {
        var (train, val, pretrained) = Data();
        var output = TestImages.TempDir("ft-locked");
        using (MaeMl.Checkpoints.RunFolder.Lock(output))
        {
            var e = Assert.Throws<IOException>(() => new Finetuner(Options(train, val, output, pretrained), new ConsoleProgress(TextWriter.Null), _ => { }).Run());
            Assert.Contains(output, e.Message);
        }
        var target = Path.Combine(TestImages.TempDir("ft-victim"), "victim.txt");
        File.WriteAllText(target, "keep me");
        File.CreateSymbolicLink(Path.Combine(output, Finetuner.BestCheckpointName), target);
        new Finetuner(Options(train, val, output, pretrained) with { Epochs = 1 }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        Assert.Equal("keep me", File.ReadAllText(target));
        Assert.False(new FileInfo(Path.Combine(output, Finetuner.BestCheckpointName)).LinkTarget is not null, "the best checkpoint is still a link");
    }
}
