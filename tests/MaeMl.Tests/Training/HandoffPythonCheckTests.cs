using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Interop;
using MaeMl.Model;
using MaeMl.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Training;

/// <summary>
/// The MaeMl half of scripts/handoff-check.py (real PyTorch on the other side); does nothing unless MAEML_HANDOFF_DIR is set.
/// py/: the script wrote an official checkpoint (before.pth), the gradients and lr of one more step and PyTorch's result (after.pth);
/// here it is imported, stepped with MaeMl's AdamW and compared (py/result.json). ml/: a MaeMl run is exported (before.pth), one more
/// MaeMl step is taken with gradients saved for the script, and exported again (after.pth); the script loads before.pth into
/// torch.optim.AdamW, takes the step and compares.
/// </summary>
[Collection("TorchGlobalRng")]
public sealed class HandoffPythonCheckTests(ITestOutputHelper output)
{
    static readonly MaeConfig Tiny = TestModels.Tiny;

    [Fact]
    public void StepsLikePyTorchBothWays()
    {
        var dir = Environment.GetEnvironmentVariable("MAEML_HANDOFF_DIR");
        if (string.IsNullOrEmpty(dir)) { output.WriteLine("MAEML_HANDOFF_DIR is not set: scripts/handoff-check.py runs this with real PyTorch"); return; }
        if (File.Exists(Path.Combine(dir, "py", "before.pth"))) FromPyTorch(Path.Combine(dir, "py"));
        ToPyTorch(Path.Combine(dir, "ml"));
    }

    static Dictionary<string, Tensor> Grads(string folder) =>
        Directory.GetFiles(folder, "*.npy").ToDictionary(f => Path.GetFileNameWithoutExtension(f), NpyFile.Load, StringComparer.Ordinal);

    /// <summary>The gradient of sum(p * g) is exactly g.</summary>
    static void SetGradients(nn.Module model, IReadOnlyDictionary<string, Tensor> grads)
    {
        using var scope = NewDisposeScope();
        Tensor? loss = null;
        foreach (var (name, p) in model.named_parameters())
            if (grads.TryGetValue(name, out var g)) { var term = (p * g).sum(); loss = loss is null ? term : loss + term; }
        loss!.backward();
    }

    static Dictionary<string, TorchSharp.Modules.AdamW.State> StateByName(nn.Module model, TorchSharp.Modules.AdamW optimizer)
    {
        var nameOf = model.named_parameters().ToDictionary(p => p.parameter.Handle, p => p.name);
        var states = optimizer.state_dict().State;
        var result = new Dictionary<string, TorchSharp.Modules.AdamW.State>(StringComparer.Ordinal);
        int i = 0;
        foreach (var g in optimizer.ParamGroups.Cast<TorchSharp.Modules.AdamW.ParamGroup>())
            foreach (var p in g.Parameters) result[nameOf[p.Handle]] = (TorchSharp.Modules.AdamW.State)states[i++];
        return result;
    }

    static ParameterGrouping Timm(MaskedAutoencoderViT model)
    {
        var (decay, noDecay) = ParameterGroups.SplitWeightDecay(model);
        return new("timm add_weight_decay", [noDecay.Select(x => x.Name).ToList(), decay.Select(x => x.Name).ToList()]);
    }

    static double MaxDiff(Tensor a, Tensor b) => OfficialFixture.MaxAbsDiff(a, b);

    void FromPyTorch(string py)
    {
        using var scope = NewDisposeScope();
        var step = JsonNode.Parse(File.ReadAllText(Path.Combine(py, "step.json")))!.AsObject();
        var maeml = Path.Combine(py, "imported.maeml");
        var imported = OfficialTrainingCheckpoint.Import(Path.Combine(py, "before.pth"), maeml);
        foreach (var n in imported.Notes) output.WriteLine($"import note: {n}");
        double[] lrs = step["lr"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        var result = new JsonObject { ["epoch"] = imported.Epoch, ["optimizer_steps"] = imported.OptimizerSteps };

        foreach (var mode in new[] { "gradients", "end_to_end" })
        {
            using var model = new MaskedAutoencoderViT(imported.Config);
            using var optimizer = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(model, 1, 0), 1, 0.9, 0.95);
            MaeCheckpoint.LoadInto(maeml, model, optimizer);
            if (mode == "gradients")
            {
                using var before = OfficialTrainingCheckpointFile.Read(Path.Combine(py, "before.pth"));
                var (_, state) = before.NameParameters([Timm(model)], "before.pth");
                var file = before.Model.ToDictionary(kv => kv.Key, kv => kv.Value);
                var ours = StateByName(model, optimizer);
                result["import_weights_identical"] = model.state_dict().All(kv => OfficialFixture.Identical(kv.Value, file[kv.Key]));
                result["import_moments_identical"] = state.All(kv => ours[kv.Key].step == kv.Value.Step
                    && OfficialFixture.Identical(ours[kv.Key].exp_avg, kv.Value.ExpAvg) && OfficialFixture.Identical(ours[kv.Key].exp_avg_sq, kv.Value.ExpAvgSq));
            }
            int gi = 0;
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lrs[gi++];
            if (mode == "gradients") SetGradients(model, Grads(Path.Combine(py, "grads")));
            else model.Forward(NpyFile.Load(Path.Combine(py, "input.npy")), NpyFile.Load(Path.Combine(py, "noise.npy"))).Loss.backward();
            optimizer.step();
            optimizer.zero_grad();

            using var after = OfficialTrainingCheckpointFile.Read(Path.Combine(py, "after.pth"));
            var (_, expected) = after.NameParameters([Timm(model)], "after.pth");
            var weights = after.Model.ToDictionary(kv => kv.Key, kv => kv.Value);
            var mine = StateByName(model, optimizer);
            result[mode] = new JsonObject
            {
                ["weights"] = model.state_dict().Max(kv => MaxDiff(kv.Value, weights[kv.Key])),
                ["exp_avg"] = expected.Max(kv => MaxDiff(mine[kv.Key].exp_avg, kv.Value.ExpAvg)),
                ["exp_avg_sq"] = expected.Max(kv => MaxDiff(mine[kv.Key].exp_avg_sq, kv.Value.ExpAvgSq)),
                ["steps_equal"] = expected.All(kv => mine[kv.Key].step == kv.Value.Step),
            };
        }
        File.WriteAllText(Path.Combine(py, "result.json"), result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        output.WriteLine($"PyTorch -> MaeMl: {result.ToJsonString()}");
    }

    void ToPyTorch(string ml)
    {
        using var scope = NewDisposeScope();
        Directory.CreateDirectory(Path.Combine(ml, "grads"));
        torch.manual_seed(3);
        using var model = new MaskedAutoencoderViT(Tiny);
        var run = new PretrainOptions { DataDir = "", OutputDir = "", Model = Tiny, Epochs = 10, WarmupEpochs = 2, BatchSize = 4, Lr = 2e-3, WeightDecay = 0.05, Seed = 3 };
        using var optimizer = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(model, run.PeakLr, run.WeightDecay), run.PeakLr, 0.9, 0.95);
        var gen = new Generator(42, torch.CPU);
        void Step(double lr, string? save)
        {
            using var s = NewDisposeScope();
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            var imgs = torch.randn(new long[] { 4, 3, 16, 16 }, generator: gen);
            var noise = torch.rand(new long[] { 4, Tiny.NumPatches }, generator: gen);
            model.Forward(imgs, noise).Loss.backward();
            if (save is not null)
            {
                NpyFile.Save(Path.Combine(save, "input.npy"), imgs);
                NpyFile.Save(Path.Combine(save, "noise.npy"), noise);
                foreach (var (name, p) in model.named_parameters())
                    if (p.grad is { } grad) NpyFile.Save(Path.Combine(save, "grads", name + ".npy"), grad);
            }
            optimizer.step();
            optimizer.zero_grad();
        }
        JsonObject Header(long steps) => new()
        {
            ["epoch"] = 2, ["step_in_epoch"] = 0, ["optimizer_steps"] = steps, ["seed"] = run.Seed, ["steps_per_epoch"] = 2,
            ["options"] = JsonSerializer.SerializeToNode(run),
        };
        var schedule = new LearningRateSchedule(run.PeakLr, run.MinLr, run.WarmupEpochs, run.Epochs);
        for (int s = 0; s < 4; s++) Step(schedule.At(s / 2.0), null);   // epochs 0 and 1, two steps each
        MaeCheckpoint.Save(Path.Combine(ml, "before.maeml"), model, Header(4), optimizer);
        var exported = OfficialTrainingCheckpoint.Export(Path.Combine(ml, "before.maeml"), Path.Combine(ml, "before.pth"));
        double lr = schedule.At(2.0);   // the first step of epoch 2: what the official loop sets at data_iter_step 0
        Step(lr, ml);
        MaeCheckpoint.Save(Path.Combine(ml, "after.maeml"), model, Header(5), optimizer);
        OfficialTrainingCheckpoint.Export(Path.Combine(ml, "after.maeml"), Path.Combine(ml, "after.pth"));
        File.WriteAllText(Path.Combine(ml, "step.json"), new JsonObject
        {
            ["lr"] = lr, ["resumes_at_epoch"] = exported.ResumesAtEpoch,
            ["schedule"] = new JsonArray(new[] { 2.0, 2.5, 3.0, 7.25 }.Select(e => (JsonNode)new JsonArray(e, schedule.At(e))).ToArray()),
        }.ToJsonString());
        output.WriteLine($"MaeMl -> PyTorch: wrote {ml} (lr {lr:E3} for the step of epoch {exported.ResumesAtEpoch})");
    }
}
