using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>Optimizer parameter groups, built in one place.</summary>
public static class ParameterGroups
{
    /// <summary>timm 0.3.2 <c>add_weight_decay</c> as MAE pretraining uses it: trainable parameters only; biases and 1-D
    /// parameters (norm weights) get no weight decay, every other tensor (including cls/mask tokens) does.</summary>
    public static (List<(string Name, Parameter Param)> Decay, List<(string Name, Parameter Param)> NoDecay) SplitWeightDecay(
        nn.Module module, IEnumerable<string>? skip = null)
    {
        var skipSet = new HashSet<string>(skip ?? Array.Empty<string>());
        var decay = new List<(string, Parameter)>();
        var noDecay = new List<(string, Parameter)>();
        foreach (var (name, p) in module.named_parameters())
        {
            if (!p.requires_grad) continue;
            if (p.ndim == 1 || name.EndsWith(".bias") || skipSet.Contains(name)) noDecay.Add((name, p));
            else decay.Add((name, p));
        }
        return (decay, noDecay);
    }

    /// <summary>AdamW groups {decay: wd, no decay: 0} for pretraining.</summary>
    public static List<AdamW.ParamGroup> AdamWGroups(nn.Module module, double lr, double weightDecay, double beta1 = 0.9, double beta2 = 0.95)
    {
        var (decay, noDecay) = SplitWeightDecay(module);
        return new List<AdamW.ParamGroup>
        {
            new(noDecay.Select(x => x.Param), lr, beta1, beta2, 1e-8, 0.0, false, false),
            new(decay.Select(x => x.Param), lr, beta1, beta2, 1e-8, weightDecay, false, false),
        };
    }
}
