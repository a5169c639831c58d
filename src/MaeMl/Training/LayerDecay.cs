using MaeMl.Model;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>One optimizer parameter group of a layer-decayed recipe: its lr multiplier and weight decay.</summary>
/// <param name="Name"><c>layer_{id}_decay</c> or <c>layer_{id}_no_decay</c>.</param>
/// <param name="LayerId">0 for the embeddings, i+1 for block i, num_layers for everything after the blocks.</param>
/// <param name="LrScale"><c>decay^(num_layers - LayerId)</c>.</param>
/// <param name="WeightDecay">The group's weight decay: the recipe's, or 0 for the no-decay group.</param>
/// <param name="ParameterNames">State-dict names of the group's parameters.</param>
internal sealed record LayerDecayGroup(string Name, int LayerId, double LrScale, double WeightDecay, IReadOnlyList<string> ParameterNames);

/// <summary>
/// Layer-wise learning-rate decay as the official <c>util/lr_decay.param_groups_lrd</c> (from BEiT): <c>cls_token</c>,
/// <c>pos_embed</c> and <c>patch_embed</c> are layer 0, block i is layer i+1, everything after the blocks (<c>norm</c>,
/// <c>fc_norm</c>, <c>head</c>) is layer <c>num_layers</c> = depth + 1; layer l's lr is scaled by
/// <c>decay^(num_layers - l)</c>. Weight decay as timm's ViT: none for 1-D tensors, biases and the
/// <c>no_weight_decay</c> set (<c>pos_embed</c>, <c>cls_token</c>).
/// </summary>
internal static class LayerDecay
{
    /// <summary>timm's <c>VisionTransformer.no_weight_decay()</c>.</summary>
    public static readonly IReadOnlySet<string> NoWeightDecay = new HashSet<string> { "pos_embed", "cls_token", "dist_token" };

    /// <summary><c>get_layer_id_for_vit</c>.</summary>
    public static int LayerId(string name, int numLayers)
    {
        if (name is "cls_token" or "pos_embed" || name.StartsWith("patch_embed", StringComparison.Ordinal)) return 0;
        if (name.StartsWith("blocks.", StringComparison.Ordinal)) return int.Parse(name.Split('.')[1]) + 1;
        return numLayers;
    }

    /// <summary>The groups (trainable parameters only), ordered by layer then decay/no-decay, as <c>param_groups_lrd</c> builds them.</summary>
    public static List<(LayerDecayGroup Group, List<Parameter> Parameters)> Groups(VisionTransformer model, double weightDecay, double layerDecay)
    {
        int numLayers = model.NumLayers;
        var groups = new SortedDictionary<(int, bool), (List<string> Names, List<Parameter> Params)>();
        foreach (var (name, p) in model.named_parameters())
        {
            if (!p.requires_grad) continue;
            bool noDecay = p.ndim == 1 || name.EndsWith(".bias", StringComparison.Ordinal) || NoWeightDecay.Contains(name);
            var key = (LayerId(name, numLayers), noDecay);
            if (!groups.TryGetValue(key, out var g)) groups[key] = g = (new List<string>(), new List<Parameter>());
            g.Names.Add(name); g.Params.Add(p);
        }
        return groups.Select(kv =>
        {
            var (layer, noDecay) = kv.Key;
            var group = new LayerDecayGroup($"layer_{layer}_{(noDecay ? "no_decay" : "decay")}", layer,
                Math.Pow(layerDecay, numLayers - layer), noDecay ? 0.0 : weightDecay, kv.Value.Names);
            return (group, kv.Value.Params);
        }).ToList();
    }

    /// <summary>AdamW groups (betas 0.9/0.999 as <c>main_finetune.py</c>) and the per-group lr scales, in the optimizer's group order:
    /// set each group's lr to <c>lr x scales[i]</c> at every step.</summary>
    public static (List<AdamW.ParamGroup> Groups, double[] LrScales) AdamWGroups(VisionTransformer model, double lr, double weightDecay, double layerDecay,
        double beta1 = 0.9, double beta2 = 0.999)
    {
        var groups = Groups(model, weightDecay, layerDecay);
        return (groups.Select(g => new AdamW.ParamGroup(g.Parameters, lr * g.Group.LrScale, beta1, beta2, 1e-8, g.Group.WeightDecay, false, false)).ToList(),
                groups.Select(g => g.Group.LrScale).ToArray());
    }
}
