using static TorchSharp.torch;

namespace MaeMl.Segmentation;

/// <summary>
/// Confusion-matrix segmentation metrics: per-class IoU = TP / (TP + FP + FN), mIoU over the classes that occur in the
/// labels or the predictions (union &gt; 0, as mmseg's nan-mean), and pixel accuracy over labelled pixels. Pixels whose
/// label is the ignore index are left out.
/// </summary>
/// <param name="numClasses">Classes K (label ids 0..K-1; other labels are left out).</param>
/// <param name="ignoreIndex">The label of unlabelled pixels.</param>
public sealed class SegmentationMetrics(int numClasses, int ignoreIndex)
{
    readonly long[] confusion = new long[numClasses * numClasses];   // [label, prediction]

    /// <summary>Classes K: the confusion matrix is K x K.</summary>
    public int NumClasses => numClasses;

    /// <summary>Adds a batch: predicted and true class ids of the same shape (any layout), int64.</summary>
    public void Add(Tensor predicted, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var l = labels.flatten().cpu();
        var p = predicted.flatten().cpu();
        var keep = l.ne(ignoreIndex).logical_and(l.ge(0)).logical_and(l.lt(numClasses));
        var index = l.masked_select(keep) * numClasses + p.masked_select(keep);
        var counts = index.bincount(null, minlength: numClasses * numClasses).data<long>().ToArray();
        for (int i = 0; i < confusion.Length; i++) confusion[i] += counts[i];
    }

    /// <summary>Adds class-id arrays (hand-made cases, tests).</summary>
    public void Add(ReadOnlySpan<int> predicted, ReadOnlySpan<int> labels)
    {
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] != ignoreIndex && labels[i] >= 0 && labels[i] < numClasses) confusion[labels[i] * numClasses + predicted[i]]++;
    }

    /// <summary>IoU of each class, NaN where the class is neither labelled nor predicted (and for the ignore index).</summary>
    public double[] PerClassIoU()
    {
        var iou = new double[numClasses];
        for (int c = 0; c < numClasses; c++)
        {
            long tp = confusion[c * numClasses + c], fn = 0, fp = 0;
            for (int k = 0; k < numClasses; k++)
                if (k != c) { fn += confusion[c * numClasses + k]; fp += confusion[k * numClasses + c]; }
            long union = tp + fp + fn;
            iou[c] = union == 0 || c == ignoreIndex ? double.NaN : (double)tp / union;
        }
        return iou;
    }

    /// <summary>Mean IoU over classes with a non-empty union.</summary>
    public double MeanIoU
    {
        get { var valid = PerClassIoU().Where(v => !double.IsNaN(v)).ToArray(); return valid.Length == 0 ? 0 : valid.Average(); }
    }

    /// <summary>Correct labelled pixels / labelled pixels.</summary>
    public double PixelAccuracy
    {
        get
        {
            long correct = 0, total = confusion.Sum();
            for (int c = 0; c < numClasses; c++) correct += confusion[c * numClasses + c];
            return total == 0 ? 0 : (double)correct / total;
        }
    }

    /// <summary>Labelled pixels counted.</summary>
    public long Pixels => confusion.Sum();
}
