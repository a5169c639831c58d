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

    /// <summary>AdamW groups of dense fine-tuning (betas 0.9/0.999): the ViT's parameters (those <paramref name="vitName"/> maps to a
    /// name of the ViT's own) at <paramref name="backboneLrScale"/> times the lr (frozen when 0: they stop requiring gradients), with
    /// layer-wise decay when <paramref name="layerDecay"/> is below 1 (ViTDet: 0.7; layer l of the ViT's <paramref name="numLayers"/>
    /// gets a further <c>decay^(numLayers - l)</c>, <see cref="LayerDecay.LayerId"/>), the rest (pyramid, head) at the lr; each split
    /// into no-decay (biases, 1-D parameters, position tables, cls token) and decay groups. Returns the groups and their lr scales in
    /// group order (for the schedule).</summary>
    public static (List<AdamW.ParamGroup> Groups, double[] LrScales) DenseAdamWGroups(nn.Module model, Func<string, string?> vitName,
        double lr, double backboneLrScale, double weightDecay, double layerDecay = 1.0, int numLayers = 0)
    {
        var groups = new List<AdamW.ParamGroup>();
        var scales = new List<double>();
        static bool NoDecay(string name, Parameter p) => p.ndim <= 1 || name.EndsWith(".bias") || name.EndsWith("pos_embed") || name.EndsWith("cls_token");
        void Add(List<(string name, Parameter parameter)> named, double scale)
        {
            var noDecay = named.Where(np => NoDecay(np.name, np.parameter)).Select(np => np.parameter).ToList();
            var decay = named.Where(np => !NoDecay(np.name, np.parameter)).Select(np => np.parameter).ToList();
            if (noDecay.Count > 0) { groups.Add(new(noDecay, lr * scale, 0.9, 0.999, 1e-8, 0.0, false, false)); scales.Add(scale); }
            if (decay.Count > 0) { groups.Add(new(decay, lr * scale, 0.9, 0.999, 1e-8, weightDecay, false, false)); scales.Add(scale); }
        }
        if (backboneLrScale == 0)
            foreach (var (name, p) in model.named_parameters()) { if (vitName(name) is not null) p.requires_grad = false; }
        else
        {
            var vit = model.named_parameters().Where(np => np.parameter.requires_grad && vitName(np.name) is not null).ToList();
            if (layerDecay == 1.0) Add(vit, backboneLrScale);
            else
                foreach (var layer in vit.GroupBy(np => LayerDecay.LayerId(vitName(np.name)!, numLayers)).OrderBy(g => g.Key))
                    Add(layer.ToList(), backboneLrScale * Math.Pow(layerDecay, numLayers - layer.Key));
        }
        Add(model.named_parameters().Where(np => np.parameter.requires_grad && vitName(np.name) is null).ToList(), 1);
        return (groups, scales.ToArray());
    }
}
