using MaeMl.Checkpoints;
using MaeMl.Model;
using MaeMl.Training;
using Xunit;

namespace MaeMl.Tests.Training;

[Collection("TorchGlobalRng")]
public class PretrainerTests
{
    static readonly MaeConfig Tiny = TestModels.Tiny;

    static PretrainOptions Options(string data, string output) => new()
    {
        DataDir = data, OutputDir = output, Model = Tiny, Epochs = 3, WarmupEpochs = 1, BatchSize = 8, Lr = 1e-3, Seed = 7, Prefetch = 2,
    };

    static List<double> Losses(string output) => MetricsLog.ReadLoss(Path.Combine(output, "metrics.jsonl")).Select(x => x.Loss).ToList();

    [Fact]
    public void LossFallsAndArtifactsAreWritten()
    {
        var data = TestImages.TempDir("data");
        TestImages.Write(data, 64, size: 24);
        var output = TestImages.TempDir("out");
        var result = new Pretrainer(Options(data, output) with { Epochs = 8 }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        var losses = Losses(output);
        Assert.Equal(8 * 8, losses.Count);
        Assert.True(losses.TakeLast(8).Average() < losses.Take(8).Average() * 0.9, $"loss did not fall: {losses.Take(8).Average():F4} -> {losses.TakeLast(8).Average():F4}");
        Assert.Equal(8, result.EpochsDone);
        Assert.Equal(64, result.OptimizerSteps);
        Assert.True(File.Exists(Path.Combine(output, "loss-curve.png")));
        var header = MaeCheckpoint.ReadHeader(result.CheckpointPath);
        Assert.Equal(Tiny, header.Config);
        Assert.Equal(8, header.Training["epoch"]!.GetValue<int>());
        Assert.True(header.HasOptimizer);
    }

    [Fact]
    public void ResumedRunReproducesTheUninterruptedLossTrajectory()
    {
        var data = TestImages.TempDir("data");
        TestImages.Write(data, 40, size: 20);
        var straight = TestImages.TempDir("straight");
        new Pretrainer(Options(data, straight), new ConsoleProgress(TextWriter.Null), _ => { }).Run();

        var chunked = TestImages.TempDir("chunked");
        // a zero time limit stops at the first accumulation boundary, mid-epoch, with a checkpoint
        var first = new Pretrainer(Options(data, chunked) with { TimeLimit = TimeSpan.Zero }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        Assert.True(first.StoppedByTimeLimit);
        Assert.Equal(1, MaeCheckpoint.ReadHeader(first.CheckpointPath).Training["step_in_epoch"]!.GetValue<int>());
        // simulate a crash after more steps were logged but before the next checkpoint: those lines are redone
        File.AppendAllText(Path.Combine(chunked, "metrics.jsonl"), "{\"type\":\"step\",\"iter\":3,\"epoch\":0,\"step\":3,\"epoch_f\":0.8,\"loss\":99}\n");
        new Pretrainer(Options(data, chunked) with { Resume = "auto" }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();

        var a = Losses(straight);
        var b = Losses(chunked);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-6, $"step {i}: {a[i]} vs {b[i]}");
    }

    [Fact]
    public void CancelledRunStopsWithACheckpointAndResumesTheSameTrajectory()
    {
        var data = TestImages.TempDir("data");
        TestImages.Write(data, 40, size: 20);
        var straight = TestImages.TempDir("straight");
        new Pretrainer(Options(data, straight), new ConsoleProgress(TextWriter.Null), _ => { }).Run();

        // a token that is cancelled already stops the run at its first accumulation boundary, after checkpoint-last was written
        var cancelled = TestImages.TempDir("cancelled");
        var logged = new List<string>();
        var stop = Assert.Throws<OperationCanceledException>(() =>
            new Pretrainer(Options(data, cancelled), new ConsoleProgress(TextWriter.Null), logged.Add).Run(new CancellationToken(canceled: true)));
        Assert.Contains("cancelled at epoch 0, step 1", stop.Message);
        Assert.Contains("--resume auto", stop.Message);
        Assert.Contains(logged, line => line.Contains("cancelled at epoch 0, step 1"));
        var header = MaeCheckpoint.ReadHeader(Path.Combine(cancelled, Pretrainer.LastCheckpointName));
        Assert.Equal((0, 1, 1L), (header.Training["epoch"]!.GetValue<int>(), header.Training["step_in_epoch"]!.GetValue<int>(), header.Training["optimizer_steps"]!.GetValue<long>()));
        Assert.True(header.HasOptimizer);

        new Pretrainer(Options(data, cancelled) with { Resume = "auto" }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        var a = Losses(straight);
        var b = Losses(cancelled);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-6, $"step {i}: {a[i]} vs {b[i]}");
    }

    [Fact]
    public void BFloat16TrainingFollowsTheFloat32LossCurve()
    {
        var data = TestImages.TempDir("data");
        TestImages.Write(data, 64, size: 16);
        var fp32 = TestImages.TempDir("fp32");
        var bf16 = TestImages.TempDir("bf16");
        new Pretrainer(Options(data, fp32) with { Epochs = 6 }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        new Pretrainer(Options(data, bf16) with { Epochs = 6, Precision = TrainingPrecision.BFloat16 }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        var a = Losses(fp32);
        var b = Losses(bf16);
        Assert.Equal(a.Count, b.Count);
        double lastA = a.TakeLast(8).Average(), lastB = b.TakeLast(8).Average();
        Assert.True(Math.Abs(lastA - lastB) <= 0.03 * lastA, $"bf16 final loss {lastB:F4} vs fp32 {lastA:F4}");
        Assert.True(lastB < b.Take(8).Average() * 0.9, "bf16 loss did not fall");
    }

    [Fact]
    public void GradientAccumulationStepsTheOptimizerEveryKBatches()
    {
        var data = TestImages.TempDir("data");
        TestImages.Write(data, 32, size: 16);
        var output = TestImages.TempDir("out");
        var result = new Pretrainer(Options(data, output) with { Epochs = 1, AccumIter = 2 }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        Assert.Equal(2, result.OptimizerSteps); // 4 batches of 8, accumulated in pairs
    }

    [Fact]
    public void UnreadableImagesAreSkippedAndNamed()
    {
        var data = TestImages.TempDir("data");
        TestImages.Write(data, 24, size: 16);
        var corrupt = Path.Combine(data, "corrupt.jpg");
        File.WriteAllBytes(corrupt, new byte[] { 0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3 });
        var truncated = Path.Combine(data, "truncated.png");
        File.WriteAllBytes(truncated, File.ReadAllBytes(Directory.GetFiles(data, "*.png")[0])[..60]);
        File.WriteAllBytes(Path.Combine(data, "empty.png"), Array.Empty<byte>());
        var messages = new List<string>();
        var output = TestImages.TempDir("out");
        var result = new Pretrainer(Options(data, output) with { Epochs = 2 }, new ConsoleProgress(TextWriter.Null), m => { lock (messages) messages.Add(m); }).Run();
        Assert.Equal(2, result.EpochsDone);
        Assert.Contains(corrupt, result.SkippedImages.Keys);
        Assert.Contains(truncated, result.SkippedImages.Keys);
        Assert.Equal(3, result.SkippedImages.Count);
        Assert.Contains(messages, m => m.Contains(corrupt));
        Assert.Single(messages, m => m.Contains(truncated)); // logged once, not every epoch
    }

    [Fact]
    public void DivergingLossStopsWithAMessageAndKeepsTheLastGoodCheckpoint()
    {
        var data = TestImages.TempDir("data");
        TestImages.Write(data, 16, size: 16);
        var output = TestImages.TempDir("out");
        new Pretrainer(Options(data, output) with { Epochs = 1 }, new ConsoleProgress(TextWriter.Null), _ => { }).Run();
        var good = File.ReadAllBytes(Path.Combine(output, Pretrainer.LastCheckpointName));
        var ex = Assert.Throws<NonFiniteLossException>(() =>
            new Pretrainer(Options(data, output) with { Epochs = 50, Lr = 1e35, WarmupEpochs = 0, Resume = "auto" }, new ConsoleProgress(TextWriter.Null), _ => { }).Run());
        Assert.Contains("Loss is", ex.Message);
        Assert.Contains(Pretrainer.LastCheckpointName, ex.Message);
        Assert.True(MaeCheckpoint.IsCheckpoint(Path.Combine(output, Pretrainer.LastCheckpointName)));
        using var model = MaeCheckpoint.LoadModel(Path.Combine(output, Pretrainer.LastCheckpointName));
        Assert.All(model.parameters(), p => Assert.True(TorchSharp.torch.isfinite(p).all().item<bool>()));
    }

    [Fact]
    public void EmptyOrMissingFoldersAreClearErrors()
    {
        var empty = TestImages.TempDir("empty");
        File.WriteAllText(Path.Combine(empty, "notes.txt"), "no images here");
        var ex = Assert.Throws<InvalidDataException>(() => new Pretrainer(Options(empty, TestImages.TempDir("o")), new ConsoleProgress(TextWriter.Null)).Run());
        Assert.Contains(empty, ex.Message);
        Assert.Contains("no images", ex.Message);
        var missing = Path.Combine(empty, "nope");
        var ex2 = Assert.Throws<DirectoryNotFoundException>(() => new Pretrainer(Options(missing, TestImages.TempDir("o")), new ConsoleProgress(TextWriter.Null)).Run());
        Assert.Contains(missing, ex2.Message);
    }

    [Fact]
    public void ScheduleWarmsUpPerStepThenFollowsAHalfCosine()
    {
        var s = new LearningRateSchedule(PeakLr: 1e-3, MinLr: 1e-5, WarmupEpochs: 2, Epochs: 10);
        Assert.Equal(0, s.At(0));
        Assert.Equal(2.5e-4, s.At(0.5), 12);
        Assert.Equal(1e-3, s.At(2), 12);
        Assert.Equal(1e-5 + (1e-3 - 1e-5) * 0.5, s.At(6), 12);
        Assert.Equal(1e-5, s.At(10), 12);
        Assert.Equal(1.5e-4 * 4096 / 256, LearningRateSchedule.ScaledLr(1.5e-4, 4096), 12);
    }

    [Fact]
    public void WeightDecaySkipsBiasesNormsAndFixedTables()
    {
        using var model = new MaskedAutoencoderViT(Tiny);
        var (decay, noDecay) = ParameterGroups.SplitWeightDecay(model);
        var decayNames = decay.Select(d => d.Name).ToHashSet();
        var noDecayNames = noDecay.Select(d => d.Name).ToHashSet();
        Assert.Contains("blocks.0.attn.qkv.weight", decayNames);
        Assert.Contains("patch_embed.proj.weight", decayNames);
        Assert.Contains("cls_token", decayNames);              // 3-D: decayed, as timm 0.3.2's add_weight_decay does
        Assert.Contains("blocks.0.attn.qkv.bias", noDecayNames);
        Assert.Contains("norm.weight", noDecayNames);
        Assert.DoesNotContain("pos_embed", decayNames.Concat(noDecayNames)); // fixed: not optimised at all
        Assert.Equal(model.parameters().Count(p => p.requires_grad), decay.Count + noDecay.Count);
    }

    /// <summary>Continued pretraining from the official PyTorch checkpoint (with decoder) and from its encoder-only file, at twice the
    /// file's image size: the weights start as the file's (position tables interpolated), schedule and optimizer start fresh,
    /// and --resume auto continues that run with its own architecture.</summary>
    [Theory]
    [InlineData("checkpoint-full.pth", false)]
    [InlineData("checkpoint-encoder.pth", true)]
    public void ContinuedPretrainingStartsFromAnOfficialFileAtANewImageSize(string file, bool encoderOnly)
    {
        var data = TestImages.TempDir("data");
        TestImages.Write(data, 16, size: 40);
        var output = TestImages.TempDir("init");
        var log = new List<string>();
        var options = Options(data, output) with
        {
            Init = OfficialFixture.PathOf(file), InitLoad = new MaeMl.Interop.MaeLoadOptions { ImageSize = 32, Template = OfficialFixture.Config },
            Model = MaePresets.MaeVitTinyPatch4Img32Dec128d2b, Epochs = 1, Lr = 1e-30, WeightDecay = 0, Precision = TrainingPrecision.Float32,
        };
        var result = new Pretrainer(options, new ConsoleProgress(TextWriter.Null), log.Add).Run();
        Assert.Contains(log, l => l.Contains("continued pretraining from") && l.Contains("new schedule and optimizer"));
        var header = MaeCheckpoint.ReadHeader(result.CheckpointPath);
        Assert.Equal(32, header.Config.ImageSize);
        Assert.Equal(OfficialFixture.Config.EmbedDim, header.Config.EmbedDim);
        Assert.Equal(2, header.Training["optimizer_steps"]!.GetValue<long>());   // 16 images / batch 8, counted from zero
        using var trained = MaeCheckpoint.LoadModel(result.CheckpointPath);
        var official = OfficialFixture.StateDict();
        var weights = trained.state_dict();
        foreach (var name in new[] { "blocks.0.attn.qkv.weight", "patch_embed.proj.weight", "norm.weight" })
            Assert.True(OfficialFixture.MaxAbsDiff(weights[name], official[name]) < 1e-6, $"{name} moved away from the official weights");
        Assert.Equal(new long[] { 1, 65, 32 }, weights["pos_embed"].shape);
        if (!encoderOnly) Assert.True(OfficialFixture.MaxAbsDiff(weights["decoder_pred.weight"], official["decoder_pred.weight"]) < 1e-6);
        else Assert.Contains(log, l => l.Contains("freshly initialised") && l.Contains("decoder"));

        // resuming the run keeps its architecture even though the options still name the tiny preset
        var resumed = new Pretrainer(options with { Epochs = 2, Resume = "auto" }, new ConsoleProgress(TextWriter.Null), log.Add).Run();
        Assert.Equal(2, resumed.EpochsDone);
        Assert.Equal(32, MaeCheckpoint.ReadHeader(resumed.CheckpointPath).Config.EmbedDim);
    }
}
