using System.Diagnostics;
using MaeMl.Checkpoints;
using MaeMl.Interop;
using MaeMl.Model;
using MaeMl.Training;
using Xunit;

namespace MaeMl.Tests.Training;

/// <summary>Careless or hostile run folders, data folders and settings (issue 11): clear errors, no poisoned or
/// half-written files, no writes through planted links, no hangs.</summary>
public class HostileRunTests
{
    static readonly MaeConfig Tiny = TestModels.Tiny;

    static PretrainOptions Options(string data, string output) => new()
    {
        DataDir = data, OutputDir = output, Model = Tiny, Epochs = 1, WarmupEpochs = 0, BatchSize = 8, Lr = 1e-3, Seed = 3, Prefetch = 2,
    };

    static PretrainResult Run(PretrainOptions options, List<string>? log = null) =>
        new Pretrainer(options, new ConsoleProgress(TextWriter.Null), m => { if (log is not null) lock (log) log.Add(m); }).Run();

    static string Data(int images = 16)
    {
        var data = TestImages.TempDir("data");
        TestImages.Write(data, images, size: 16);
        return data;
    }

    /// <summary>A copy of <paramref name="good"/> whose AdamW moments are NaN (the weights are fine), written without MaeCheckpoint.</summary>
    static string PoisonedMoments(string good, string path)
    {
        using var model = MaeCheckpoint.LoadModel(good);
        using var optimizer = TorchSharp.torch.optim.AdamW(ParameterGroups.AdamWGroups(model, 1e-3, 0.05), 1e-3, 0.9, 0.95);
        MaeCheckpoint.LoadInto(good, model, optimizer);
        foreach (var p in model.parameters()) p.grad = TorchSharp.torch.full_like(p, double.NaN);
        optimizer.step();
        MaeCheckpoint.LoadInto(good, model);   // weights back to finite, moments stay NaN
        using var file = new BinaryReader(File.OpenRead(good));
        var head = file.ReadBytes(6);
        var json = System.Text.Json.Nodes.JsonNode.Parse(file.ReadBytes(file.ReadInt32()))!.AsObject();
        json.Remove("checksums");
        var weights = file.ReadBytes((int)file.ReadInt64());
        using var opt = new MemoryStream();
        using (var w = new BinaryWriter(opt, System.Text.Encoding.UTF8, leaveOpen: true)) optimizer.save_state_dict(w);
        using var output = new BinaryWriter(File.Create(path));
        output.Write(head);
        var header = System.Text.Encoding.UTF8.GetBytes(json.ToJsonString());
        output.Write(header.Length); output.Write(header);
        output.Write((long)weights.Length); output.Write(weights);
        output.Write(opt.Length); output.Write(opt.ToArray());
        return path;
    }

    [Fact]
    public void NonFiniteWeightsNeverReplaceTheLastGoodCheckpoint()
    {
        var data = Data(32);
        var output = TestImages.TempDir("out");
        Run(Options(data, output));
        var last = Path.Combine(output, Pretrainer.LastCheckpointName);
        var good = File.ReadAllBytes(last);
        // resuming from a file with NaN optimizer moments: the first step's loss is finite, then the weights turn NaN;
        // the mid-epoch checkpoint (every boundary here) must not replace the good one
        var poisoned = PoisonedMoments(last, Path.Combine(TestImages.TempDir("poison"), "poisoned.maeml"));
        var ex = Assert.Throws<NonFiniteLossException>(() => Run(Options(data, output) with { Epochs = 3, CheckpointMinutes = 0, Resume = poisoned }));
        Assert.Contains(Pretrainer.LastCheckpointName, ex.Message);
        Assert.Contains("epoch 1, step 0", ex.Message);   // which checkpoint is the good one
        Assert.Equal(good, File.ReadAllBytes(last));
    }

    [Fact]
    public void CheckpointsRefuseNonFiniteWeightsAndMoments()
    {
        var dir = TestImages.TempDir("finite");
        var path = Path.Combine(dir, "model.maeml");
        using var model = new MaskedAutoencoderViT(Tiny);
        using var optimizer = TorchSharp.torch.optim.AdamW(model.parameters(), 1e-3);
        MaeCheckpoint.Save(path, model, optimizer: optimizer);
        var before = File.ReadAllBytes(path);
        var norm = model.named_parameters().First(p => p.name == "norm.weight").parameter;
        using (TorchSharp.torch.no_grad()) norm[3] = double.PositiveInfinity;
        var ex = Assert.Throws<NonFiniteWeightsException>(() => MaeCheckpoint.Save(path, model, optimizer: optimizer));
        Assert.Contains("norm.weight", ex.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        using (TorchSharp.torch.no_grad()) norm[3] = 1.0;
        // finite weights, NaN moments
        using var saved = MaeCheckpoint.LoadModel(path);
        foreach (var p in model.parameters()) p.grad = TorchSharp.torch.full_like(p, double.NaN);
        optimizer.step();
        using (TorchSharp.torch.no_grad()) foreach (var (name, p) in model.named_parameters()) p.copy_(saved.named_parameters().First(q => q.name == name).parameter);
        ex = Assert.Throws<NonFiniteWeightsException>(() => MaeCheckpoint.Save(path, model, optimizer: optimizer));
        Assert.Contains("optimizer", ex.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
    }

    [Fact]
    public void RunFilesAreNotWrittenThroughPlantedLinks()
    {
        var data = Data();
        var output = TestImages.TempDir("out");
        var victims = TestImages.TempDir("victims");
        foreach (var name in new[] { "run.json", "checkpoint-epoch1.maeml" })
        {
            File.WriteAllText(Path.Combine(victims, name), "precious");
            File.CreateSymbolicLink(Path.Combine(output, name), Path.Combine(victims, name));
        }
        Run(Options(data, output) with { SaveEveryEpochs = 1 });
        foreach (var name in new[] { "run.json", "checkpoint-epoch1.maeml" })
        {
            Assert.Equal("precious", File.ReadAllText(Path.Combine(victims, name)));
            Assert.Null(new FileInfo(Path.Combine(output, name)).LinkTarget);
        }
        Assert.True(MaeCheckpoint.IsCheckpoint(Path.Combine(output, "checkpoint-epoch1.maeml")));

        var metrics = Path.Combine(TestImages.TempDir("out"), "metrics.jsonl");
        File.WriteAllText(Path.Combine(victims, "metrics.jsonl"), "precious");
        File.CreateSymbolicLink(metrics, Path.Combine(victims, "metrics.jsonl"));
        var ex = Assert.ThrowsAny<IOException>(() => Run(Options(data, Path.GetDirectoryName(metrics)!)));
        Assert.Contains("metrics.jsonl", ex.Message);
        Assert.Equal("precious", File.ReadAllText(Path.Combine(victims, "metrics.jsonl")));
    }

    [Fact]
    public void ASecondRunOnTheSameOutputFolderIsRefused()
    {
        var data = Data();
        var output = TestImages.TempDir("out");
        using var stop = new CancellationTokenSource();
        var first = Task.Run(() => new Pretrainer(Options(data, output) with { Epochs = 100_000 }, new ConsoleProgress(TextWriter.Null), _ => { }).Run(stop.Token));
        var watch = Stopwatch.StartNew();
        while (!File.Exists(Path.Combine(output, "run.json")) && !first.IsCompleted && watch.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(20);
        try
        {
            var ex = Assert.ThrowsAny<IOException>(() => Run(Options(data, output)));
            Assert.Contains(output, ex.Message);
            Assert.Contains($"pid {Environment.ProcessId}", ex.Message);
        }
        finally
        {
            stop.Cancel();
            try { first.Wait(TimeSpan.FromSeconds(60)); } catch (AggregateException) { }
        }
        // once the first run has ended, the folder is free again
        Run(Options(data, output) with { Resume = "auto", Epochs = 2 });
    }

    [Fact]
    public void AFolderOfOnlyUnreadableImagesIsAnError()
    {
        var data = TestImages.TempDir("data");
        for (int i = 0; i < 16; i++) File.WriteAllBytes(Path.Combine(data, $"bad{i}.png"), [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        var output = TestImages.TempDir("out");
        var ex = Assert.Throws<InvalidDataException>(() => Run(Options(data, output)));
        Assert.Contains(data, ex.Message);
        Assert.Contains("bad0.png", ex.Message);
        Assert.False(File.Exists(Path.Combine(output, Pretrainer.LastCheckpointName)));
    }

    [Fact]
    public void LinksAndTheRunsOwnOutputFolderDoNotMultiplyTheData()
    {
        var data = Data();
        Directory.CreateSymbolicLink(Path.Combine(data, "loop"), data);                     // a loop
        var sub = Directory.CreateDirectory(Path.Combine(data, "sub")).FullName;
        File.CreateSymbolicLink(Path.Combine(sub, "again.png"), Directory.GetFiles(data, "*.png")[0]);   // a second name for one file
        var output = Path.Combine(data, "run");                                              // --out inside --data
        Directory.CreateDirectory(output);
        File.Copy(Directory.GetFiles(data, "*.png")[1], Path.Combine(output, "stray.png"));
        var log = new List<string>();
        Run(Options(data, output), log);
        Assert.Contains(log, m => m.StartsWith("pretraining 16 images"));
    }

    static void MakeFifo(string path)
    {
        using var p = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    [Fact]
    public void PipesInTheDataFolderOrGivenToInspectDoNotHang()
    {
        var data = Data();
        MakeFifo(Path.Combine(data, "pipe.png"));
        var run = Task.Run(() => Run(Options(data, TestImages.TempDir("out"))));
        Assert.True(run.Wait(TimeSpan.FromSeconds(60)), "pretraining hung on a FIFO in the data folder");

        var pipe = Path.Combine(TestImages.TempDir("pipe"), "model.pth");
        MakeFifo(pipe);
        var inspect = Task.Run(() => Assert.ThrowsAny<InvalidDataException>(() => MaeModelFile.Inspect(pipe)));
        Assert.True(inspect.Wait(TimeSpan.FromSeconds(20)), "inspect hung on a FIFO");
        Assert.Contains("model.pth", inspect.Result.Message);
    }

    public static TheoryData<string, Func<PretrainOptions, PretrainOptions>> BadSettings => new()
    {
        { "threads", o => o with { Threads = 100_000 } },
        { "threads", o => o with { Threads = -1 } },
        { "lr", o => o with { Lr = null, BaseLr = double.NaN } },
        { "lr", o => o with { Lr = null, BaseLr = double.PositiveInfinity } },
        { "lr", o => o with { Lr = double.NaN } },
        { "weight decay", o => o with { WeightDecay = -0.05 } },
        { "weight decay", o => o with { WeightDecay = double.NaN } },
        { "min lr", o => o with { MinLr = -1e-6 } },
        { "min lr", o => o with { MinLr = 1 } },
        { "warmup", o => o with { WarmupEpochs = double.NaN } },
        { "limit", o => o with { Limit = -5 } },
        { "save every", o => o with { SaveEveryEpochs = -1 } },
        { "checkpoint minutes", o => o with { CheckpointMinutes = double.NaN } },
        { "checkpoint minutes", o => o with { CheckpointMinutes = -1 } },
        { "prefetch", o => o with { Prefetch = -1 } },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public void NonsenseSettingsAreRefusedUpFront(string what, Func<PretrainOptions, PretrainOptions> change)
    {
        var ex = Assert.Throws<ArgumentException>(() => new Pretrainer(change(Options("data", "out")), new ConsoleProgress(TextWriter.Null), _ => { }));
        Assert.Contains(what, ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void StaleTempFilesOfDeadProcessesAreSweptAtStart()
    {
        var data = Data();
        var output = TestImages.TempDir("out");
        var dead = Path.Combine(output, $".checkpoint-last.maeml.2147483646.{Guid.NewGuid():N}.tmp");
        var alive = Path.Combine(output, $".checkpoint-last.maeml.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        var unrelated = Path.Combine(output, "notes.tmp");
        foreach (var f in new[] { dead, alive, unrelated }) File.WriteAllText(f, "half a checkpoint");
        Run(Options(data, output));
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(alive));
        Assert.True(File.Exists(unrelated));
    }
}
