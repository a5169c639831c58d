using MaeMl.Data;

namespace MaeMl.Training;

/// <summary>The labelled training and validation sets of a classification run (fine-tuning, linear probing), from class folders
/// or from images held in memory, in the training set's class order.</summary>
internal static class ClassificationData
{
    /// <exception cref="ArgumentException">Fewer than two classes.</exception>
    public static (ImageFolder Train, ImageFolder? Val) Load(string trainDir, ImageFolder? trainImages, int? limitPerClass,
        string? valDir, ImageFolder? valImages, int? valLimitPerClass)
    {
        var train = trainImages ?? ImageFolder.Labelled(trainDir, limitPerClass);
        if (train.Classes.Count < 2)
            throw new ArgumentException($"'{train.Root}' has {(train.Classes.Count == 0 ? "no class" : $"a single class ({train.Classes[0]})")}: classification needs at least two");
        var val = valImages ?? (valDir is null ? null : ImageFolder.Labelled(valDir, valLimitPerClass, train.Classes));
        if (val is not null && !val.Classes.SequenceEqual(train.Classes))
            throw new ArgumentException($"The validation set's classes [{string.Join(", ", val.Classes)}] are not the training set's [{string.Join(", ", train.Classes)}]");
        return (train, val);
    }
}
